"""The demo generator: deterministic bytes, sources drawn where the catalogues say, tables that fit
their declarations. Real FITS files in a temporary directory; no database."""

from __future__ import annotations

import hashlib
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_area

import schemas
from db.load import _encode
from demo import DEFAULT_SEED, DemoData, generate
from demo.sedmodels import BAND_WAVELENGTHS
from demo.sky import make_sky
from demo.structures import make_structures
from demo.surveys import DEMO_SURVEYS


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoData:
    return generate(tmp_path_factory.mktemp("demo"))


def _digest(paths: list[Path], root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def _all_files(d: DemoData) -> list[Path]:
    return sorted(p for files in d.files.values() for p in files)


def test_same_seed_same_bytes(demo: DemoData, tmp_path: Path) -> None:
    again = generate(tmp_path)
    first_root = _all_files(demo)[0].parent.parent
    assert _digest(_all_files(demo), first_root) == _digest(_all_files(again), tmp_path)
    assert demo.tables.keys() == again.tables.keys()
    for name, cols in demo.tables.items():
        for col, values in cols.items():
            a, b = np.asarray(values), np.asarray(again.tables[name][col])
            assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), (name, col)


def test_other_seed_other_sky() -> None:
    s1, s2 = make_structures(1), make_structures(2)
    assert s1.tables["filaments.filaments"]["contour"] != s2.tables["filaments.filaments"]["contour"]
    a = make_sky(1, 1, s1).tables["compactsources.band250um"]["designation"]
    b = make_sky(2, 1, s2).tables["compactsources.band250um"]["designation"]
    assert a[:50] != b[:50]


def test_scale_multiplies_counts() -> None:
    one = make_sky(DEFAULT_SEED, 1, make_structures(DEFAULT_SEED, 1)).tables
    two = make_sky(DEFAULT_SEED, 2, make_structures(DEFAULT_SEED, 2)).tables
    for name in ("compactsources.band250um", "compactsources.sed_view_final"):
        ratio = len(two[name]["glon"] if "glon" in two[name] else two[name]["glonft"]) / len(
            one[name]["glon"] if "glon" in one[name] else one[name]["glonft"]
        )
        assert 1.7 < ratio < 2.3, name


def test_files_layout_and_headers(demo: DemoData) -> None:
    assert len(demo.surveys) == len(DEMO_SURVEYS)
    restricted = [s for s in demo.surveys if s.groups]
    assert [s.groups for s in restricted] == [("survey-team",)]
    transitions = {s.transition for s in demo.surveys if s.name == "Hi-GAL"}
    assert transitions == {"70 um", "160 um", "250 um", "350 um", "500 um"}
    assert {"24 um", "912 MHz"} <= {s.transition for s in demo.surveys}
    units = set()
    for survey, files in demo.files.items():
        assert 3 <= len(files) <= 4
        for path in files:
            assert path.parent.name == survey.slug
            size = path.stat().st_size
            assert size < 6_000_000
            h = fits.getheader(path)
            assert "DATE" not in h
            assert h["CTYPE1"].startswith("GLON-") and h["CTYPE2"].startswith("GLAT-")
            assert h["CUNIT1"] == "deg" and h["BMAJ"] > 0 and h["BMIN"] > 0
            assert h["BITPIX"] == -32 and h["TELESCOP"] and h["INSTRUME"] and h["OBJECT"]
            if survey.dataproduct_type == "cube":
                assert h["NAXIS"] == 3 and h["CTYPE3"] == "VRAD" and h["SPECSYS"] == "LSRK"
                assert h["RESTFRQ"] == survey.rest_frequency
                units.add(h["CUNIT3"])
            else:
                assert h["NAXIS"] == 2
                assert "WAVEMIN" in h or "FREQ" in h
    assert units == {"m/s", "km/s"}


def test_tiles_overlap_and_cross_l0(demo: DemoData) -> None:
    for survey, files in demo.files.items():
        lons = []
        for path in files:
            w = WCS(fits.getheader(path)).celestial
            lons.append(w.calc_footprint(center=False)[:, 0])
        crossing = [np.any(lo > 180) and np.any(lo < 180) for lo in lons]
        assert any(crossing), survey.slug


def _isolated_bright(cat: dict, x: np.ndarray, y: np.ndarray, shape: tuple[int, int], pix: float) -> list[int]:
    ny, nx = shape
    glon, glat = np.asarray(cat["glon"]), np.asarray(cat["glat"])
    fa, flux = np.asarray(cat["fwhma"]), np.asarray(cat["flux"])
    signed = np.where(glon > 180, glon - 360, glon)
    rad = 2.5 * fa / pix
    inside = np.flatnonzero((x > rad + 12) & (x < nx - rad - 12) & (y > rad + 12) & (y < ny - rad - 12))
    out = []
    for i in inside[np.argsort(-flux[inside])][:400]:
        d = np.hypot(signed - signed[i], glat - glat[i]) * 3600
        if not np.any((d > 0) & (d < 4 * fa[i]) & (flux > 0.01 * flux[i])):
            out.append(int(i))
        if len(out) == 3:
            break
    return out


@pytest.mark.parametrize("slug, table", [
    ("hi-gal-70um", "band70um"), ("hi-gal-250um", "band250um"), ("mipsgal-24um", "band24um"),
])
def test_sources_drawn_at_catalogue_positions_and_fluxes(demo: DemoData, slug: str, table: str) -> None:
    cat = demo.tables[f"compactsources.{table}"]
    survey = next(s for s in demo.files if s.slug == slug)
    checked = 0
    for path in demo.files[survey]:
        data = fits.getdata(path).astype(np.float64)
        w = WCS(fits.getheader(path))
        x, y = w.world_to_pixel_values(np.asarray(cat["glon"]), np.asarray(cat["glat"]))
        pix = np.sqrt(proj_plane_pixel_area(w)) * 3600
        for i in _isolated_bright(cat, x, y, data.shape, pix):
            rad = 2.5 * cat["fwhma"][i] / pix
            r = int(np.ceil(rad)) + 10
            xi, yi = int(round(x[i])), int(round(y[i]))
            cut = data[yi - r: yi + r + 1, xi - r: xi + r + 1]
            yy, xx = np.mgrid[-r: r + 1, -r: r + 1]
            dist = np.hypot(xx + xi - x[i], yy + yi - y[i])
            # the brightest pixel is the one at the catalogue position
            py, px = np.unravel_index(np.argmax(np.where(dist < rad, cut, -np.inf)), cut.shape)
            assert abs(px - r + xi - x[i]) <= 1.0 and abs(py - r + yi - y[i]) <= 1.0
            # aperture sum minus the annulus median, in Jy (MJy/sr x pixel solid angle)
            background = np.median(cut[(dist > rad + 3) & (dist <= rad + 9)])
            jy = (cut[dist <= rad] - background).sum() * proj_plane_pixel_area(w) * (np.pi / 180) ** 2 * 1e6
            assert jy == pytest.approx(cat["flux"][i], rel=0.05)
            checked += 1
    assert checked >= 3


def test_catalogue_sizes_and_contract(demo: DemoData) -> None:
    counts = demo.row_counts()
    assert sum(n for name, n in counts.items() if ".band" in name) >= 100_000
    assert counts["compactsources.sed_models"] >= 20_000
    for band in ("24", "70", "160", "250", "350", "500"):
        cat = demo.tables[f"compactsources.band{band}um"]
        names = cat["designation"]
        assert len(set(names)) == len(names)
        assert all(" " not in n for n in names)
        glon = np.asarray(cat["glon"])
        assert glon.min() >= 0 and glon.max() < 360 and (glon > 358.5).any() and (glon < 1.5).any()
        assert np.all(np.asarray(cat["fwhma"]) >= np.asarray(cat["fwhmb"]))
    sed = demo.tables["compactsources.sed_view_final"]
    assert len(set(sed["designationft"])) == len(sed["designationft"])
    for band in ("1100", "870", "500", "350", "250", "160", "70", "24", "22", "21"):
        missing = np.asarray(sed[f"designation{band}"]) == "missing"
        assert 0 < missing.sum() < len(missing)
        flux = np.asarray(sed["flux21_a" if band == "21" else f"flux{band}"])
        assert np.array_equal(np.isnan(flux), missing)
        assert np.array_equal(np.isnan(np.asarray(sed[f"glon{band}"])), missing)
    dist = np.asarray(sed["distance"])
    assert (dist == -9999).any() and (dist > 0).any()
    assert set(np.unique(sed["numid_intree"])) >= {1, 2}
    models = demo.tables["compactsources.sed_models"]
    assert len(np.unique(models["id"])) == len(models["id"])
    assert all(np.all(np.asarray(models[b]) > 0) for b in BAND_WAVELENGTHS)


_LEGACY = re.compile(r"^(-?\d+\.\d+_)+,(-?\d+\.\d+_)+$")


def test_filament_contours(demo: DemoData) -> None:
    fil = demo.tables["filaments.filaments"]
    br = demo.tables["filaments.branches"]
    bub = demo.tables["filaments.bubbles"]
    for text in fil["contour"] + br["contour"] + br["contour1d"] + br["contour_new"] + bub["contour"]:
        assert _LEGACY.match(text), text
        lons, lats = (part.rstrip("_").split("_") for part in text.split(","))
        assert len(lons) == len(lats) >= 3
    # polygons and the legacy strings carry the same vertices
    first = fil["contour_poly"][0]
    lons = fil["contour"][0].split(",")[0].rstrip("_").split("_")
    assert first.startswith("{(") and first.count("(") == len(lons)
    assert set(br["flagspine"]) == {"S", "B"}
    assert set(br["idfil_mos"]) == set(fil["idfil_mos"].tolist())
    spines = np.asarray(br["flagspine"]) == "S"
    assert np.bincount(np.asarray(br["idfil_mos"])[spines]).max() == 2


def _decode(block: bytes, ncols: int) -> list[list[bytes | None]]:
    rows, pos = [], 0
    while pos < len(block):
        (n,) = struct.unpack_from(">h", block, pos)
        assert n == ncols
        pos += 2
        row = []
        for _ in range(n):
            (size,) = struct.unpack_from(">i", block, pos)
            pos += 4
            row.append(None if size < 0 else block[pos: pos + size])
            pos += max(size, 0)
        rows.append(row)
    return rows


def test_tables_fit_their_declarations(demo: DemoData) -> None:
    for name, cols in demo.tables.items():
        table = schemas.find_table(name)
        declared = {c.name: c for c in table.columns}
        assert set(cols) <= set(declared), (name, set(cols) - set(declared))
        for col in table.columns:
            if col.generated:
                assert col.name not in cols
            elif not col.nullable:
                values = cols[col.name]
                assert values is not None and not any(v is None for v in values), (name, col.name)
                if np.asarray(values).dtype.kind == "f":
                    assert not np.isnan(np.asarray(values)).any(), (name, col.name)
        assert set(table.primary_key) <= set(cols), name
    # the binary COPY rows of the merged table decode to the same values and NULLs
    table = schemas.find_table("compactsources.sed_view_final")
    cols = [c for c in table.columns if c.name in demo.tables[table.qualified_name]]
    data = demo.tables[table.qualified_name]
    rows = _decode(_encode(cols, data, 0, 50, {"text", "polygon", "point", "path", "circle", "timestamp"}), len(cols))
    assert len(rows) == 50
    for j, col in enumerate(cols):
        for i in range(50):
            value, raw = data[col.name][i], rows[i][j]
            if col.type == "text":
                assert raw.decode() == value
            elif col.type == "double":
                assert (raw is None) == bool(np.isnan(value))
                if raw is not None:
                    assert struct.unpack(">d", raw)[0] == value
            elif col.type in ("long", "int"):
                assert int.from_bytes(raw, "big", signed=True) == value
