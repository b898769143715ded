"""The pieces of source finding that need no server: option checks, tile stitching, the catalogue table."""

from __future__ import annotations

import numpy as np
import pytest

from vo.errors import NotFoundError, UsageError
from vo.sfind.catalog import Detections, catalog_table, ds9_regions
from vo.sfind.finder import Components
from vo.sfind.params import SfindParams
from vo.sfind.registry import find_app, finders
from vo.sfind.stitch import duplicates


def test_every_app_describes_valid_defaults() -> None:
    for finder in finders().values():
        for option in finder.options():
            # the default passes the option's own check
            assert option.parse(str(option.default).lower()) == option.default


@pytest.mark.parametrize(("given", "message"), [
    ({"innerclip": ["x"]}, "innerclip: expected a number"),
    ({"innerclip": ["1e9"]}, "above the maximum"),
    ({"max_summits": ["-1"]}, "below the minimum"),
    ({"max_summits": ["1.5"]}, "expected an integer"),
    ({"negative": ["perhaps"]}, "expected true or false"),
    ({"nonsense": ["1"]}, "nonsense: not an option"),
    ({"innerclip": ["1", "2"]}, "given 2 values"),
])
def test_options_are_checked_against_the_description(given, message) -> None:
    with pytest.raises(UsageError, match=message):
        SfindParams.from_params({"APP": ["aegean"], "ID": ["ivo://x?y"], **given}, max_tiles=4)


def test_params_read_app_ids_region_and_options() -> None:
    q = SfindParams.from_params({"app": ["AEGEAN"], "id": ["a", "b", "a"], "circle": ["1 2 0.1"],
                                 "possys": ["GALACTIC"], "INNERCLIP": ["6"]}, max_tiles=4)
    assert q.app == "aegean" and q.ids == ("a", "b") and q.options["innerclip"] == 6.0
    assert q.cut == {"CIRCLE": ["1 2 0.1"], "POSSYS": ["GALACTIC"]} and q.options["outerclip"] == 4.0
    with pytest.raises(UsageError, match="at most 1 per job"):
        SfindParams.from_params({"APP": ["aegean"], "ID": ["a", "b"]}, max_tiles=1)
    with pytest.raises(NotFoundError, match="no app called"):
        find_app("caesar")


def test_stitching_keeps_the_detection_farthest_from_its_edge() -> None:
    beam = 15 / 3600
    # one source seen by three tiles (slightly different positions), one seen once, and two close
    # components of the same tile that must both stay
    glon = np.array([1.0, 1.0 + beam / 5, 1.0 - beam / 4, 2.0, 3.0, 3.0 + beam / 2])
    glat = np.zeros(6)
    tile = np.array([0, 1, 2, 0, 1, 1])
    edge = np.array([0.01, 0.05, 0.02, 0.1, 0.1, 0.1])
    drop = duplicates(glon, glat, tile, edge, beam)
    assert drop.tolist() == [True, False, True, False, False, False]


def test_catalogue_columns_units_and_regions() -> None:
    rows = [{"lon": 10.0, "lat": 0.5, "err_lon": 1e-4, "err_lat": 2e-4, "peak": 0.01, "err_peak": 1e-4,
             "flux": 0.02, "err_flux": 2e-4, "a": 20.0, "b": 15.0, "pa": 30.0, "local_rms": 1e-4,
             "background": 0.0, "flags": 0}]
    comps = Components.from_rows(rows)
    det = Detections(comps, np.array([272.0]), np.array([-19.0]), np.array([10.0]), np.array([0.5]),
                     np.array([0.02]), np.array([2e-4]), ["Jy"], ["Jy/beam"], ["ivo://x?y"], np.array([0.1]),
                     ["HIGALBM10.0000+0.5000"], np.array([1 / 3600]))
    t = catalog_table(det, "aegean")
    assert t["name"][0] == "VLKB-SF G010.0000+00.5000" and t["snr"][0] == pytest.approx(100)
    assert t["err_glat"][0] == pytest.approx(0.72) and t["err_glat"].unit == "arcsec"
    assert t["known_sep"][0] == pytest.approx(1.0) and not t["new"][0]
    assert t["glon"].meta["ucd"] == "pos.galactic.lon"
    text = ds9_regions(t).decode()
    assert "ellipse(10.000000,0.500000,10.000\",7.500\",120.00)" in text and "galactic" in text
    assert len(catalog_table(Detections.concat([]), "aegean")) == 0


def _fits(tmp_path, data: np.ndarray, *, celestial: bool = True, beam: bool = True):
    from astropy.io import fits

    from vo.cutout import CutRequest, plan

    h = fits.Header()
    if celestial:
        h.update({"CTYPE1": "GLON-CAR", "CTYPE2": "GLAT-CAR", "CDELT1": -1e-3, "CDELT2": 1e-3, "CRPIX1": 10,
                  "CRPIX2": 10, "CRVAL1": 0.0, "CRVAL2": 0.0, "CUNIT1": "deg", "CUNIT2": "deg"})
    else:
        h.update({"CTYPE1": "PIXEL", "CTYPE2": "PIXEL"})
    if beam:
        h.update({"BMAJ": 4e-3, "BMIN": 4e-3, "BPA": 0.0, "BUNIT": "Jy/beam"})
    path = tmp_path / "in.fits"
    fits.PrimaryHDU(data.astype(np.float32), h).writeto(path)
    return plan(path, CutRequest())


@pytest.mark.parametrize(("kind", "message"), [
    ("large", "above the limit of 100"), ("nan", "no finite pixel"), ("nowcs", "no celestial WCS"),
    ("nobeam", "no beam"),
])
def test_images_a_finder_cannot_search_are_refused(tmp_path, kind, message) -> None:
    from vo.sfind.image import prepare_image

    data = np.random.default_rng(1).normal(size=(20, 20))
    if kind == "nan":
        data[:] = np.nan
    cut = _fits(tmp_path, data, celestial=kind != "nowcs", beam=kind != "nobeam")
    limit = 100 if kind == "large" else 10_000
    with pytest.raises(UsageError, match=message):
        prepare_image(cut, "ivo://x?y", tmp_path, spectral_given=False, max_pixels=limit)
