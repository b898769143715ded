"""vo.moc without a server: polygons across RA 0, format choice, band keys and the cache's invalidation."""

from __future__ import annotations

from pathlib import Path

import astropy.units as u
import pytest

from vo import moc
from vo.errors import UsageError

SQUARE = [359.5, -0.5, 0.5, -0.5, 0.5, 0.5, 359.5, 0.5]  # straddles RA 0


def test_polygon_across_ra0_is_covered_on_both_sides() -> None:
    m = moc.build([SQUARE], 10)
    inside = m.contains_lonlat([359.7, 0.0, 0.3] * u.deg, [0.2, 0.0, -0.2] * u.deg)
    outside = m.contains_lonlat([358.0, 2.0, 180.0] * u.deg, [0.0, 0.0, 0.0] * u.deg)
    assert inside.all() and not outside.any()
    assert m.sky_fraction < 2 * (1.2 * 1.2) / 41253  # about the square's 1 deg2, not the whole RA band


def test_empty_and_degenerate_regions_give_an_empty_moc() -> None:
    assert moc.build([None, [1.0, 2.0, 3.0, 4.0]], 8).empty()


@pytest.mark.parametrize(("param", "accept", "name"), [
    (None, None, "fits"),
    (None, "*/*", "fits"),
    (None, "application/json", "json"),
    (None, "text/html, text/plain;q=0.5", "ascii"),
    (None, "application/json;q=0.2, application/fits;q=0.9", "fits"),
    ("ASCII", "application/json", "ascii"),
    ("application/x-fits", None, "fits"),
])
def test_format_choice(param: str | None, accept: str | None, name: str) -> None:
    assert moc.pick_format(param, accept).name == name


def test_unknown_format_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="FORMAT"):
        moc.pick_format("votable", None)


@pytest.mark.parametrize(("band", "key"), [("Continuum | 70 um", "70um"), ("13CO | 1-0", "13co-1-0"),
                                           ("Continuum | 912 MHz", "912mhz")])
def test_band_keys(band: str, key: str) -> None:
    assert moc.band_key(band) == key


def test_cache_rebuilds_when_footprints_change(tmp_path: Path) -> None:
    cache = moc.MocCache(tmp_path)
    first = cache.moc("s", 9, [("a", SQUARE)])
    assert len(list(tmp_path.glob("*.fits"))) == 1
    assert cache.moc("s", 9, [("a", SQUARE)]) == first  # served from the file
    moved = [v + 10 if i % 2 == 0 else v for i, v in enumerate(SQUARE)]
    second = cache.moc("s", 9, [("a", moved)])
    assert second != first and len(list(tmp_path.glob("*.fits"))) == 1  # the stale one is gone
    next(tmp_path.glob("*.fits")).write_bytes(b"damaged")
    assert cache.moc("s", 9, [("a", moved)]) == second  # rebuilt from the footprints
