"""Header-only ingest: ObsCore rows from real FITS headers (footprints, spectral ranges, l = 0)
and clear reasons for bad files. No database: these test the description of each file."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

import schemas
from demo import DEFAULT_SEED
from demo.images import write_survey
from demo.sky import make_sky
from demo.structures import make_structures
from demo.surveys import DEMO_SURVEYS, Survey
from vo.ingest.datasets import describe_file, read_header
from vo.ingest.obscore import DATALINK_FORMAT, IngestError, obscore_row

AUTH = "vlkb.test"
C = 299_792_458.0
SLUGS = ("hi-gal-70um", "mipsgal-24um", "askap-emu-912mhz", "meerkat-private-1284mhz",
         "champ-13co-1-0", "champ-c18o-1-0")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[Survey, list[Path]]:
    root = tmp_path_factory.mktemp("ingest")
    structures = make_structures(DEFAULT_SEED)
    sky = make_sky(DEFAULT_SEED, 1, structures)
    return {
        survey: write_survey(root, survey, layout, sky, structures, DEFAULT_SEED)
        for survey, layout in DEMO_SURVEYS if survey.slug in SLUGS
    }


def _rows(files: dict[Survey, list[Path]], slug: str) -> list[tuple[Path, dict]]:
    survey = next(s for s in files if s.slug == slug)
    return [(p, describe_file(p, survey, authority=AUTH)) for p in files[survey]]


def _vertices(spoly: str) -> np.ndarray:
    pairs = re.findall(r"\(([-\d.]+)d,([-\d.]+)d\)", spoly)
    assert spoly.startswith("{(") and spoly.endswith(")}") and len(pairs) == spoly.count("(")
    return np.array(pairs, dtype=float)


def _same_points(a: np.ndarray, b: np.ndarray, tol_deg: float = 1e-6) -> bool:
    ca = SkyCoord(a[:, 0] * u.deg, a[:, 1] * u.deg)
    cb = SkyCoord(b[:, 0] * u.deg, b[:, 1] * u.deg)
    return all(ca[i].separation(cb).deg.min() < tol_deg for i in range(len(a))) and len(a) == len(b)


def _counter_clockwise(v: np.ndarray) -> bool:
    dl = (v[:, 0] - v[0, 0] + 180) % 360 - 180
    x, y = dl * np.cos(np.deg2rad(v[:, 1])), v[:, 1]
    return float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)) > 0


@pytest.mark.parametrize("slug", SLUGS)
def test_footprint_is_the_wcs_corners(files, slug: str) -> None:
    for path, row in _rows(files, slug):
        header = fits.getheader(path)
        cel = WCS(header).celestial
        corners = cel.calc_footprint(center=False)
        gal = _vertices(row["s_region_galactic"])
        assert len(gal) == 4 and _same_points(gal, corners)
        icrs = SkyCoord(corners[:, 0] * u.deg, corners[:, 1] * u.deg, frame="galactic").icrs
        eq = _vertices(row["s_region"])
        assert _same_points(eq, np.column_stack([icrs.ra.deg, icrs.dec.deg]))
        assert _counter_clockwise(gal) and _counter_clockwise(eq)
        assert np.all((gal[:, 0] >= 0) & (gal[:, 0] < 360))
        centre = cel.pixel_to_world((header["NAXIS1"] - 1) / 2, (header["NAXIS2"] - 1) / 2).icrs
        assert row["s_ra"] == pytest.approx(centre.ra.deg) and row["s_dec"] == pytest.approx(centre.dec.deg)
        diagonal = SkyCoord(corners[0, 0], corners[0, 1], unit="deg", frame="galactic").separation(
            SkyCoord(corners[2, 0], corners[2, 1], unit="deg", frame="galactic")).deg
        assert row["s_fov"] == pytest.approx(diagonal, rel=0.01)
        assert row["s_xel1"] == header["NAXIS1"] and row["s_xel2"] == header["NAXIS2"]
        assert row["s_pixel_scale"] == pytest.approx(abs(header["CDELT1"]) * 3600)
        assert row["s_resolution"] == pytest.approx(header["BMAJ"] * 3600)


def test_row_has_every_declared_column_and_the_contract_values(files) -> None:
    declared = [c.name for c in schemas.find_table("ivoa.obscore").columns if not c.generated]
    path, row = _rows(files, "hi-gal-70um")[0]
    assert list(row) == declared
    did = f"ivo://{AUTH}/vlkb?hi-gal-70um/{path.name}"
    assert row["obs_publisher_did"] == did
    # relative to the service: answers prefix the public base URL (docs/ingest.md)
    assert row["access_url"] == f"datalink/links?ID=ivo%3A%2F%2Fvlkb.test%2Fvlkb%3Fhi-gal-70um%2F{path.name}"
    assert row["preview"] == f"datalink/preview/hi-gal-70um/{path.name}"
    assert row["access_format"] == DATALINK_FORMAT
    assert row["access_estsize"] == -(-path.stat().st_size // 1024)
    assert (row["obs_collection"], row["obs_title"]) == ("Hi-GAL", "Continuum | 70 um")
    assert (row["dataproduct_type"], row["calib_level"], row["data_rights"]) == ("image", 2, "public")
    assert (row["o_unit"], row["o_ucd"]) == ("MJy/sr", "phot.flux.density.sb")
    assert (row["facility_name"], row["instrument_name"]) == ("Herschel", "PACS")
    assert row["t_min"] < row["t_max"] and row["t_exptime"] > 0
    assert row["vel_min"] is None and row["pol_states"] is None
    _, private = _rows(files, "meerkat-private-1284mhz")[0]
    assert private["data_rights"] == "secure"
    _, cube = _rows(files, "champ-13co-1-0")[0]
    assert (cube["dataproduct_type"], cube["o_ucd"], cube["obs_title"]) == ("cube", "phot.antennaTemp", "13CO | 1-0")


def test_continuum_coverage_in_metres(files) -> None:
    for _, row in _rows(files, "hi-gal-70um"):
        assert row["em_min"] == pytest.approx(60e-6) and row["em_max"] == pytest.approx(85e-6)
        assert row["em_xel"] == 1 and row["em_res_power"] == pytest.approx(72.5 / 25)
    for _, row in _rows(files, "askap-emu-912mhz"):
        assert row["em_min"] == pytest.approx(C / (912e6 + 144e6))
        assert row["em_max"] == pytest.approx(C / (912e6 - 144e6))
    for _, row in _rows(files, "mipsgal-24um"):
        assert (row["em_min"], row["em_max"]) == pytest.approx((20.8e-6, 26.1e-6))


@pytest.mark.parametrize("slug, f0", [("champ-13co-1-0", 110.2013543e9), ("champ-c18o-1-0", 109.7821734e9)])
def test_cube_coverage_from_velocity_axis(files, slug: str, f0: float) -> None:
    for path, row in _rows(files, slug):
        header = fits.getheader(path)
        factor = 1000.0 if header["CUNIT3"] == "km/s" else 1.0
        edges = (header["CRVAL3"] + header["CDELT3"] * (np.array([0.5, header["NAXIS3"] + 0.5]) - header["CRPIX3"]))
        v = edges * factor  # m/s
        assert row["vel_min"] == pytest.approx(v.min() / 1000) and row["vel_max"] == pytest.approx(v.max() / 1000)
        assert (row["vel_min"], row["vel_max"]) == pytest.approx((-40.625, 39.375))
        # radio convention: f = f0 (1 - v/c); the highest velocity is the longest wavelength
        assert row["em_min"] == pytest.approx(C / (f0 * (1 - v.min() / C)), rel=1e-12)
        assert row["em_max"] == pytest.approx(C / (f0 * (1 - v.max() / C)), rel=1e-12)
        assert row["em_min"] < C / f0 < row["em_max"]
        assert row["em_xel"] == 64 and row["em_res_power"] == pytest.approx(C / 1250.0, rel=1e-3)
        assert (row["em_ucd"], row["em_unit"]) == ("spect.dopplerVeloc.radio", header["CUNIT3"])


def _header(crval1: float, proj: str = "TAN", nx: int = 200, ny: int = 100) -> fits.Header:
    h = fits.Header()
    h["NAXIS"], h["NAXIS1"], h["NAXIS2"] = 2, nx, ny
    h["CTYPE1"], h["CTYPE2"] = f"GLON-{proj}", f"GLAT-{proj}"
    h["CRVAL1"], h["CRVAL2"] = crval1, 0.0
    h["CRPIX1"], h["CRPIX2"] = (nx + 1) / 2, (ny + 1) / 2
    h["CDELT1"], h["CDELT2"] = -0.01, 0.01
    h["CUNIT1"] = h["CUNIT2"] = "deg"
    h["BMAJ"] = h["BMIN"] = 0.005
    h["WAVELENG"] = 250e-6
    return h


@pytest.mark.parametrize("proj", ["TAN", "CAR", "SIN"])
def test_footprint_across_l0(proj: str) -> None:
    survey = {"name": "Test", "species": "Continuum", "transition": "250 um"}
    row = obscore_row(_header(0.0, proj), path="t.fits", survey=survey, authority=AUTH, file_size=1)
    gal = _vertices(row["s_region_galactic"])
    assert sorted(np.round(gal[:, 0], 6)) == pytest.approx([1.0, 1.0, 359.0, 359.0], abs=1e-3)
    assert sorted(np.round(gal[:, 1], 6)) == pytest.approx([-0.5, -0.5, 0.5, 0.5], abs=1e-3)
    assert _counter_clockwise(gal)
    centre = SkyCoord(0 * u.deg, 0 * u.deg, frame="galactic").icrs
    assert row["s_ra"] == pytest.approx(centre.ra.deg) and row["s_dec"] == pytest.approx(centre.dec.deg)
    assert row["s_fov"] == pytest.approx(np.hypot(2.0, 1.0), rel=0.01)
    eq = _vertices(row["s_region"])
    assert _same_points(eq, np.column_stack([
        SkyCoord(gal[:, 0] * u.deg, gal[:, 1] * u.deg, frame="galactic").icrs.ra.deg,
        SkyCoord(gal[:, 0] * u.deg, gal[:, 1] * u.deg, frame="galactic").icrs.dec.deg,
    ]))
    assert row["em_min"] == row["em_max"] == pytest.approx(250e-6) and row["em_res_power"] is None


def test_missing_description_is_an_error() -> None:
    survey = {"name": "Test", "species": "Continuum", "transition": "x"}
    no_wcs = _header(0.0)
    for key in ("CTYPE1", "CTYPE2"):
        del no_wcs[key]
    with pytest.raises(IngestError, match="no celestial WCS"):
        obscore_row(no_wcs, path="a.fits", survey=survey, authority=AUTH, file_size=1)
    no_band = _header(10.0)
    del no_band["WAVELENG"]
    with pytest.raises(IngestError, match="no spectral coverage"):
        obscore_row(no_band, path="a.fits", survey=survey, authority=AUTH, file_size=1)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_bad_files_have_clear_reasons(files, tmp_path: Path) -> None:
    good = next(iter(files.values()))[0].read_bytes()
    no_wcs = tmp_path / "nowcs.fits"
    fits.PrimaryHDU(np.zeros((8, 8), dtype=np.float32)).writeto(no_wcs)
    empty_primary = tmp_path / "noimage.fits"
    fits.PrimaryHDU().writeto(empty_primary)
    survey = next(iter(files))
    cases = {
        _write(tmp_path / "text.fits", b"this is not FITS\n" * 200): "not a FITS file",
        _write(tmp_path / "empty.fits", b""): "not a FITS file",
        _write(tmp_path / "header.fits", good[:1000]): "truncated: the header of HDU 0 has no END card",
        _write(tmp_path / "half.fits", good[: len(good) // 2]): "truncated: HDU 0 declares",
        no_wcs: "no celestial WCS",
        empty_primary: "no image HDU",
        tmp_path / "absent.fits": "cannot read the file",
    }
    for path, reason in cases.items():
        with pytest.raises(IngestError, match=re.escape(reason)):
            describe_file(path, survey, authority=AUTH)


def test_image_in_an_extension_and_header_only(tmp_path: Path) -> None:
    path = tmp_path / "ext.fits"
    image = fits.ImageHDU(np.zeros((100, 200), dtype=np.float32), header=_header(0.5))
    fits.HDUList([fits.PrimaryHDU(), image]).writeto(path)
    header, index = read_header(path)
    assert index == 1 and header["CTYPE1"] == "GLON-TAN"
    row = describe_file(path, {"name": "T", "species": "Continuum", "transition": "t"}, authority=AUTH)
    assert row["obs_publisher_did"] == f"ivo://{AUTH}/vlkb?t-t/ext.fits"
