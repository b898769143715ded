"""Postage stamps over HTTP (issue 19): ``/stamps/sync`` and ``/stamps/async`` on the demo data.

Truth is the demo generator's own catalogue (:func:`demo.sky.make_sky` with the demo seed: the
positions, sizes and integrated fluxes the images were drawn from) and astropy for the WCS and
the unit relations; never an earlier answer of the service.
"""

from __future__ import annotations

import csv
import io
import math
import tarfile
import time

import httpx
import numpy as np
import pytest
from astropy import units as u
from astropy.constants import c, k_B
from astropy.io import fits
from astropy.io.votable import parse_single_table
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_area
from lxml import etree

from demo import DEFAULT_SEED
from demo.sky import make_sky
from demo.structures import make_structures
from tests.xsd import assert_valid
from vo.uws.xml import VLKB_NS

UWS = "http://www.ivoa.net/xml/UWS/v1.0"
SURVEYS = {"70": "Hi-GAL/70 um", "160": "Hi-GAL/160 um", "250": "Hi-GAL/250 um", "24": "MIPSGAL/24 um"}


@pytest.fixture(scope="module")
def catalogues() -> dict[str, dict[str, np.ndarray]]:
    """The demo's per-band catalogues, as the generator drew them into the images."""
    sky = make_sky(DEFAULT_SEED, 1, make_structures(DEFAULT_SEED, 1))
    out = {}
    for band in SURVEYS:
        t = sky.tables[f"compactsources.band{band}um"]
        lon = np.asarray(t["glon"], dtype=float)
        out[band] = {"l": np.where(lon > 180, lon - 360, lon), "b": np.asarray(t["glat"], dtype=float),
                     "flux": np.asarray(t["flux"], dtype=float), "fwhma": np.asarray(t["fwhma"], dtype=float),
                     "fwhmb": np.asarray(t["fwhmb"], dtype=float)}
    return out


def isolated(cat: dict[str, np.ndarray], *, lrange: tuple[float, float], brange: tuple[float, float],
             count: int) -> list[int]:
    """The brightest sources in the box with no neighbour within 4 FWHM brighter than 0.5% of them (a
    fainter one changes the aperture sum by less than the noise)."""
    inside = np.flatnonzero((cat["l"] > lrange[0]) & (cat["l"] < lrange[1]) & (cat["b"] > brange[0])
                            & (cat["b"] < brange[1]))
    chosen = []
    for i in inside[np.argsort(-cat["flux"][inside])]:
        d = np.hypot((cat["l"] - cat["l"][i]) * np.cos(np.radians(cat["b"][i])), cat["b"] - cat["b"][i]) * 3600
        d[i] = np.inf
        near = d < 4 * max(cat["fwhma"][i], 10.0)
        if not (cat["flux"][near] > 0.005 * cat["flux"][i]).any():
            chosen.append(int(i))
        if len(chosen) == count:
            break
    assert len(chosen) == count, "the demo has isolated bright sources there"
    return chosen


def sync(server, **params) -> httpx.Response:
    return httpx.post(server.url + "/stamps/sync", data=params, timeout=120)


def hdus(resp: httpx.Response) -> fits.HDUList:
    assert resp.status_code == 200, resp.text[:600]
    assert resp.headers["content-type"] == "application/fits"
    return fits.open(io.BytesIO(resp.content))


def dali_error(resp: httpx.Response, status: int = 400) -> str:
    assert resp.status_code == status, resp.text[:400]
    doc = etree.fromstring(resp.content)
    info = doc.find(".//{*}INFO[@name='QUERY_STATUS']")
    assert info is not None and info.get("value") == "ERROR"
    return (info.text or "").strip()


def offset_px(hdu: fits.ImageHDU, l: float, b: float) -> tuple[float, float]:  # noqa: E741
    """The position of (l, b) relative to the stamp's centre pixel, pixels."""
    wcs = WCS(hdu.header)
    x, y = wcs.world_to_pixel_values(l % 360.0, b)
    ny, nx = hdu.data.shape
    return float(x - (nx - 1) / 2), float(y - (ny - 1) / 2)


def aperture_sum(hdu: fits.ImageHDU, l: float, b: float, radius_arcsec: float) -> float:  # noqa: E741
    wcs = WCS(hdu.header)
    x0, y0 = wcs.world_to_pixel_values(l % 360.0, b)
    pix = math.sqrt(proj_plane_pixel_area(wcs)) * 3600
    y, x = np.mgrid[0:hdu.data.shape[0], 0:hdu.data.shape[1]]
    inside = np.hypot(x - x0, y - y0) <= radius_arcsec / pix
    assert np.isfinite(hdu.data[inside]).all()
    return float(np.sum(hdu.data[inside], dtype=np.float64))


def stamp_radius(fwhm: float) -> float:
    """Degrees: the aperture (1.5 FWHM) well inside, the background annulus (0.7 R ... R) beyond 5 sigma."""
    return 3.6 * max(fwhm, 10.0) / 3600


@pytest.mark.parametrize("band", ["70", "160", "250"])
def test_sources_sit_at_the_centre_with_their_catalogue_flux(server, catalogues, band) -> None:
    cat = catalogues[band]
    for i in isolated(cat, lrange=(-0.6, 0.6), brange=(-0.45, 0.45), count=3):
        l, b, fwhm = cat["l"][i], cat["b"][i], cat["fwhma"][i]  # noqa: E741
        got = hdus(sync(server, POS=f"CIRCLE {l % 360} {b} {stamp_radius(fwhm)}", POSSYS="GALACTIC",
                        SURVEY=SURVEYS[band], BKG="median"))
        stamp = got[1]
        assert stamp.header["EXTNAME"] == SURVEYS[band] and stamp.header["BUNIT"] == "Jy/pixel"
        dx, dy = offset_px(stamp, l, b)
        assert abs(dx) <= 0.5 and abs(dy) <= 0.5, (dx, dy)
        flux = aperture_sum(stamp, l, b, 1.5 * fwhm)
        assert flux == pytest.approx(cat["flux"][i], rel=0.02), (i, flux, cat["flux"][i])
        assert stamp.header["VLKBCOV"] == 1.0 and stamp.header["VLKBMETH"] == "cut"
        assert stamp.header["VLKBS001"].startswith("ivo://")


def test_units_follow_the_astropy_relations(server, catalogues) -> None:
    cat = catalogues["160"]
    i = isolated(cat, lrange=(-0.6, 0.6), brange=(-0.45, 0.45), count=1)[0]
    l, b, fwhm = cat["l"][i], cat["b"][i], cat["fwhma"][i]  # noqa: E741
    pos = {"POS": f"CIRCLE {l} {b} {stamp_radius(fwhm)}", "POSSYS": "GALACTIC", "SURVEY": SURVEYS["160"],
           "BKG": "median"}
    per_pixel = hdus(sync(server, **pos))[1]
    per_sr = hdus(sync(server, **pos, UNIT="MJy/sr"))[1]
    per_beam = hdus(sync(server, **pos, UNIT="Jy/beam"))[1]
    kelvin = hdus(sync(server, **pos, UNIT="K"))[1]
    assert (per_sr.header["BUNIT"], per_beam.header["BUNIT"], kelvin.header["BUNIT"]) == ("MJy/sr", "Jy/beam", "K")
    pixel_sr = proj_plane_pixel_area(WCS(per_sr.header)) * (np.pi / 180) ** 2
    beam_sr = np.pi / (4 * np.log(2)) * per_beam.header["BMAJ"] * per_beam.header["BMIN"] * (np.pi / 180) ** 2
    np.testing.assert_allclose(per_sr.data * 1e6 * pixel_sr, per_pixel.data, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(per_beam.data * pixel_sr / beam_sr, per_pixel.data, rtol=1e-5, atol=1e-9)
    # Rayleigh-Jeans at the band's wavelength: T = c^2 I / (2 k nu^2)
    nu = (per_sr.header["WAVELENG"] * u.m).to(u.Hz, equivalencies=u.spectral())
    intensity = per_sr.data.astype(np.float64) * 1e6 * 1e-26 * u.W / u.m**2 / u.Hz
    t = (intensity * c.si ** 2 / (2 * k_B.si * nu**2)).to(u.K).value
    np.testing.assert_allclose(kelvin.data, t, rtol=1e-4, atol=1e-12)


def test_a_source_on_the_l0_seam(server, catalogues) -> None:
    cat = catalogues["70"]
    i = isolated(cat, lrange=(-0.012, 0.012), brange=(-0.4, 0.4), count=1)[0]
    l, b, fwhm = cat["l"][i], cat["b"][i], cat["fwhma"][i]  # noqa: E741
    stamp = hdus(sync(server, POS=f"CIRCLE {l % 360} {b} {stamp_radius(fwhm)}", POSSYS="GALACTIC",
                      SURVEY=SURVEYS["70"], BKG="median"))[1]
    dx, dy = offset_px(stamp, l, b)
    assert abs(dx) <= 0.5 and abs(dy) <= 0.5
    assert aperture_sum(stamp, l, b, 1.5 * fwhm) == pytest.approx(cat["flux"][i], rel=0.02)
    assert stamp.header["VLKBCOV"] == 1.0
    # the stamp's columns run across l = 0 (359.99 ... 0.01) when the stamp reaches it
    lon = WCS(stamp.header).pixel_to_world_values([0, stamp.data.shape[1] - 1], [0, 0])[0] % 360
    if abs(l) < stamp_radius(fwhm) * 0.9:
        assert lon.max() > 359 and lon.min() < 1


def test_a_stamp_over_tile_edges_comes_from_a_merge(server, catalogues) -> None:
    # the four 70 um tiles meet at (0, 0), overlapping by 0.043 deg in l and 0.032 deg in b: a
    # stamp of radius 0.06 there lies wholly in no tile
    cat = catalogues["70"]
    i = isolated(cat, lrange=(-0.02, 0.02), brange=(-0.02, 0.02), count=1)[0]
    l, b = cat["l"][i], cat["b"][i]  # noqa: E741
    stamp = hdus(sync(server, POS=f"CIRCLE {l % 360} {b} 0.06", POSSYS="GALACTIC", SURVEY=SURVEYS["70"],
                      BKG="median"))[1]
    assert stamp.header["VLKBMETH"] == "merge" and stamp.header["VLKBNSRC"] >= 2
    assert stamp.header["VLKBCOV"] == 1.0 and np.isfinite(stamp.data).all()
    dx, dy = offset_px(stamp, l, b)
    assert abs(dx) <= 0.5 and abs(dy) <= 0.5
    assert aperture_sum(stamp, l, b, 1.5 * cat["fwhma"][i]) == pytest.approx(cat["flux"][i], rel=0.02)


def test_regridded_stamps_share_one_wcs_and_keep_the_flux(server, catalogues) -> None:
    cat = catalogues["160"]
    i = isolated(cat, lrange=(-0.5, 0.5), brange=(-0.4, 0.4), count=1)[0]
    l, b, fwhm = cat["l"][i], cat["b"][i], cat["fwhma"][i]  # noqa: E741
    got = hdus(sync(server, POS=f"CIRCLE {l} {b} {stamp_radius(fwhm)}", POSSYS="GALACTIC", REGRID="true",
                    SURVEY=[SURVEYS["70"], SURVEYS["160"], SURVEYS["250"], "ASKAP-EMU/912 MHz"], BKG="median"))
    stamps = got[1:]
    assert len(stamps) == 4
    keys = ("CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2", "CDELT1", "CDELT2")
    first = stamps[0]
    for s in stamps[1:]:
        assert s.data.shape == first.data.shape
        assert [s.header[k] for k in keys] == [first.header[k] for k in keys]
    # the grid is the coarsest survey's pixel (250 um: 6"), north-aligned, centred on the source
    assert abs(first.header["CDELT2"]) * 3600 == pytest.approx(6.0)
    assert first.header["CRVAL1"] == pytest.approx(l % 360) and first.header["CRVAL2"] == pytest.approx(b)
    s160 = next(s for s in stamps if s.header["EXTNAME"] == SURVEYS["160"])
    assert aperture_sum(s160, l, b, 1.5 * fwhm) == pytest.approx(cat["flux"][i], rel=0.02)


def test_a_common_beam(server, catalogues) -> None:
    cat = catalogues["160"]
    i = isolated(cat, lrange=(-0.5, 0.5), brange=(-0.4, 0.4), count=1)[0]
    l, b = cat["l"][i], cat["b"][i]  # noqa: E741
    got = hdus(sync(server, POS=f"CIRCLE {l} {b} 0.03", POSSYS="GALACTIC", BEAM="largest", BKG="median",
                    SURVEY=[SURVEYS["70"], SURVEYS["250"]]))
    beams = {h.header["EXTNAME"]: h.header["BMAJ"] * 3600 for h in got[1:]}
    assert beams == {SURVEYS["70"]: pytest.approx(18.0), SURVEYS["250"]: pytest.approx(18.0)}
    assert got[1].header["VLKBBMA0"] * 3600 == pytest.approx(5.8)
    # a target below a native beam cannot be reached by convolution: that survey fails, the sync
    # answer says why
    assert "smaller" in dali_error(sync(server, POS=f"CIRCLE {l} {b} 0.03", POSSYS="GALACTIC", BEAM="10",
                                        SURVEY=SURVEYS["250"]))


def test_a_line_survey_gives_a_moment_zero_map(server) -> None:
    got = hdus(sync(server, POS="CIRCLE 0.64 0 0.05", POSSYS="GALACTIC", SURVEY="CHaMP/13CO 1-0", UNIT="K",
                    VELO="-50 50"))
    assert got[1].header["BUNIT"] == "K km/s"
    assert any("moment 0" in h for h in got[1].header["HISTORY"])


@pytest.mark.parametrize(("params", "needle"), [
    ({"SURVEY": "Hi-GAL/999 um"}, "unknown survey"),
    ({"SURVEY": "NoSuchSurvey/1 um"}, "unknown survey"),
    ({"SURVEY": "Hi-GAL"}, "name/transition"),
    ({"SURVEY": "Hi-GAL/70 um", "POS": "CIRCLE 30 0 0.01"}, "no coverage"),
    ({"SURVEY": "Hi-GAL/70 um", "POS": "CIRCLE 0.1 0 0"}, "radius must be positive"),
    ({"SURVEY": "Hi-GAL/70 um", "POS": "CIRCLE 0.1 0 5"}, "larger than"),
    ({"SURVEY": "Hi-GAL/70 um", "POS": "CIRCLE 0.1 0"}, "3 numbers"),
    ({"SURVEY": "Hi-GAL/70 um", "POS": "RANGE 0 1 0 1"}, "centred on a point"),
    ({"SURVEY": "Hi-GAL/70 um", "UNIT": "furlongs"}, "UNIT"),
    ({"SURVEY": "Hi-GAL/70 um", "BKG": "mode"}, "BKG"),
    ({"SURVEY": "Hi-GAL/70 um", "STACK": "mean"}, "STACK"),
    ({"SURVEY": "Hi-GAL/70 um", "BEAM": "-3"}, "BEAM"),
    ({"SURVEY": "Hi-GAL/70 um", "PIXSCALE": "nan"}, "PIXSCALE"),
    ({"SURVEY": "Hi-GAL/70 um", "POSSYS": "FK4"}, "POSSYS"),
    ({"SURVEY": "Hi-GAL/70 um", "QUERY": "SELECT 1"}, "one position"),
    ({"SURVEY": "Hi-GAL/70 um", "STACKSIZE": "fwhma"}, "give STACK too"),
    ({"SURVEY": "Hi-GAL/70 um", "STACKCOMMON": "10"}, "needs STACKSIZE"),
])
def test_bad_requests_get_clear_errors(server, params, needle) -> None:
    params = {"POS": "CIRCLE 0.1 0.05 0.01", "POSSYS": "GALACTIC", **params}
    assert needle.lower() in dali_error(sync(server, **params)).lower()


# -- async ----------------------------------------------------------------------------------------

def run_job(server, data: dict, files: dict | None = None, headers: dict | None = None,
            timeout: float = 180) -> tuple[str, str]:
    """Create and run a stamps job; its URL and final phase."""
    resp = httpx.post(server.url + "/stamps/async", data=data, files=files, headers=headers, timeout=60,
                      follow_redirects=False)
    assert resp.status_code == 303, resp.text[:400]
    url = server.url + resp.headers["location"] if resp.headers["location"].startswith("/") \
        else resp.headers["location"]
    httpx.post(url + "/phase", data={"PHASE": "RUN"}, headers=headers, timeout=30)
    deadline = time.monotonic() + timeout
    phase = ""
    while time.monotonic() < deadline:
        phase = httpx.get(url + "/phase", params={"WAIT": "10"}, headers=headers, timeout=30).text.strip()
        if phase in ("COMPLETED", "ERROR", "ABORTED"):
            break
    return url, phase


def result(url: str, name: str, headers: dict | None = None) -> bytes:
    resp = httpx.get(f"{url}/results/{name}", headers=headers, timeout=60, follow_redirects=True)
    assert resp.status_code == 200, resp.text[:300]
    return resp.content


def test_async_positions_table_and_failures_in_the_manifest(server, catalogues) -> None:
    cat = catalogues["70"]
    picks = isolated(cat, lrange=(-0.5, 0.5), brange=(-0.4, 0.4), count=3)
    table = "name,glon,glat\n" + "".join(f"s{k},{cat['l'][i] % 360},{cat['b'][i]}\n" for k, i in enumerate(picks))
    table += "far,30.0,0.0\n"  # no survey covers it: a manifest row, not a failed job
    url, phase = run_job(server, {"SURVEY": [SURVEYS["70"], SURVEYS["160"]], "SIZE": "0.02", "BKG": "median"},
                         files={"SOURCES": ("sources.csv", table.encode(), "text/csv")})
    assert phase == "COMPLETED", httpx.get(url + "/error").text
    manifest = parse_single_table(io.BytesIO(result(url, "manifest"))).to_table()
    assert len(manifest) == 8
    by = {(r["source"], r["survey"]): r for r in manifest}
    assert {by[("far", s)]["status"] for s in (SURVEYS["70"], SURVEYS["160"])} == {"ERROR"}
    assert "no coverage" in by[("far", SURVEYS["70"])]["reason"]
    assert all(by[(f"s{k}", s)]["status"] == "OK" for k in range(3) for s in (SURVEYS["70"], SURVEYS["160"]))
    with tarfile.open(fileobj=io.BytesIO(result(url, "stamps.tar.gz")), mode="r:gz") as tar:
        names = tar.getnames()
        assert "manifest.xml" in names
        first = by[("s0", SURVEYS["70"])]["file"]
        one = fits.open(io.BytesIO(tar.extractfile(first).read()))[0]
    i = picks[0]
    dx, dy = offset_px(one, cat["l"][i], cat["b"][i])
    assert abs(dx) <= 0.5 and abs(dy) <= 0.5
    assert one.header["BUNIT"] == "Jy/pixel" and one.header["OBJECT"] == "s0"
    # small jobs list each file as a result of its own too
    assert fits.open(io.BytesIO(result(url, first)))[0].header["OBJECT"] == "s0"


def test_async_query_cube_and_stack(server, catalogues, database) -> None:
    query = ("SELECT TOP 6 designation, glon, glat FROM compactsources.band70um "
             "WHERE glat BETWEEN -0.3 AND 0.3 AND (glon < 0.4 OR glon > 359.6) ORDER BY flux DESC")
    url, phase = run_job(server, {"QUERY": query, "SIZE": "0.01", "FORMAT": "cube", "STACK": "mean",
                                  "SURVEY": [SURVEYS["70"], SURVEYS["160"]], "BKG": "median"})
    assert phase == "COMPLETED", httpx.get(url + "/error").text
    manifest = parse_single_table(io.BytesIO(result(url, "manifest"))).to_table()
    assert len(manifest) == 12 and set(manifest["status"]) == {"OK"}
    cube = fits.open(io.BytesIO(result(url, manifest["file"][0])))[0]
    assert cube.data.shape[0] == 2 and cube.header["PLANE1"] == SURVEYS["70"]
    with tarfile.open(fileobj=io.BytesIO(result(url, "stamps.tar.gz")), mode="r:gz") as tar:
        stack_name = next(n for n in tar.getnames() if n.startswith("stack_hi-gal_70um"))
        stack = fits.open(io.BytesIO(tar.extractfile(stack_name).read()))
    assert stack[0].header["STKN"] == 6 and stack["COVERAGE"].data.max() == 6
    assert stack[0].header["STKSNR"] > 10


@pytest.mark.parametrize(("data", "files", "needle"), [
    ({"SURVEY": "Hi-GAL/70 um", "QUERY": "SELECT FROM nowhere", "SIZE": "0.01"}, None, "query"),
    ({"SURVEY": "Hi-GAL/70 um", "QUERY": "SELECT TOP 3 designation FROM compactsources.band70um", "SIZE": "0.01"},
     None, "position columns"),
    ({"SURVEY": "Hi-GAL/70 um", "SIZE": "0.01"}, {"SOURCES": ("t.csv", b"name,glon\nx,1\n", "text/csv")},
     "position columns"),
    ({"SURVEY": "Hi-GAL/70 um", "SIZE": "0.01"}, {"SOURCES": ("t.xml", b"<VOTABLE><oops", "text/xml")},
     "cannot read"),
    ({"SURVEY": "Hi-GAL/70 um", "SIZE": "0.01"}, {"SOURCES": ("t.csv", b"glon,glat\n1,abc\n", "text/csv")},
     "not a number"),
    ({"SURVEY": "Hi-GAL/70 um"}, {"SOURCES": ("t.csv", b"glon,glat\n0.1,0\n", "text/csv")}, "radius"),
    ({"SURVEY": "Hi-GAL/70 um", "SIZE": "0.01"},
     {"SOURCES": ("t.csv", b"glon,glat\n" + b"0.1,0\n" * 6, "text/csv")}, "more than 5 sources"),
    ({"SURVEY": "Nope/1 um", "POS": "CIRCLE 0.1 0 0.01", "POSSYS": "GALACTIC"}, None, "unknown survey"),
    ({"SURVEY": "Hi-GAL/70 um", "POS": "CIRCLE 30 0 0.01", "POSSYS": "GALACTIC"}, None, "no stamp"),
    ({"SURVEY": "Hi-GAL/70 um", "SIZE": "0.01", "STACK": "mean", "STACKSIZE": "fwhm"},
     {"SOURCES": ("t.csv", b"glon,glat\n0.1,0\n", "text/csv")}, "no column 'fwhm'"),
    ({"SURVEY": "Hi-GAL/70 um", "SIZE": "0.01", "STACK": "mean", "STACKSIZE": "fwhm"},
     {"SOURCES": ("t.csv", b"glon,glat,fwhm\n0.1,0,-2\n", "text/csv")}, "must be positive"),
    ({"SURVEY": "Hi-GAL/70 um", "SIZE": "0.01", "STACK": "mean", "STACKSIZE": "fwhm", "STACKSIZEUNIT": "pc"},
     {"SOURCES": ("t.csv", b"glon,glat,fwhm\n0.1,0,2\n", "text/csv")}, "STACKSIZEUNIT"),
    ({"SURVEY": "Hi-GAL/70 um", "POS": "CIRCLE 0.1 0 0.01", "POSSYS": "GALACTIC", "STACK": "mean",
      "STACKSIZE": "fwhm"}, None, "positions have none"),
])
def test_async_bad_input_ends_the_job_in_error(limited_server, data, files, needle) -> None:
    url, phase = run_job(limited_server, data, files=files)
    assert phase == "ERROR"
    text = httpx.get(url + "/error", timeout=30).text
    assert needle.lower() in text.lower(), text


@pytest.fixture(scope="module")
def limited_server(database):
    from tests.conftest import running_server

    with running_server(database, stamps_max_sources="5") as srv:
        yield srv


def test_csv_table_of_icrs_positions(server, catalogues) -> None:
    from astropy.coordinates import SkyCoord

    cat = catalogues["160"]
    i = isolated(cat, lrange=(-0.5, 0.5), brange=(-0.4, 0.4), count=1)[0]
    c = SkyCoord(cat["l"][i] * u.deg, cat["b"][i] * u.deg, frame="galactic").icrs
    buf = io.StringIO()
    csv.writer(buf).writerows([["source_name", "ra", "dec", "radius"], ["icrs1", c.ra.deg, c.dec.deg, 0.02]])
    url, phase = run_job(server, {"SURVEY": SURVEYS["160"]},
                         files={"SOURCES": ("s.csv", buf.getvalue().encode(), "text/csv")})
    assert phase == "COMPLETED"
    manifest = parse_single_table(io.BytesIO(result(url, "manifest"))).to_table()
    stamp = fits.open(io.BytesIO(result(url, manifest["file"][0])))[0]
    dx, dy = offset_px(stamp, cat["l"][i], cat["b"][i])
    assert abs(dx) <= 0.5 and abs(dy) <= 0.5


def test_pyvo_async_job_from_an_adql_query(server) -> None:
    import pyvo

    job = pyvo.dal.AsyncTAPJob.create(
        server.url + "/stamps",
        "SELECT TOP 3 designation, glon, glat FROM compactsources.band160um "
        "WHERE glon BETWEEN 0.2 AND 0.4 AND glat BETWEEN -0.1 AND 0.1 ORDER BY flux DESC",
        SURVEY=["Hi-GAL/160 um", "Hi-GAL/250 um"], SIZE=0.01, UNIT="MJy/sr",
    )
    job.run().wait(phases={"COMPLETED", "ERROR", "ABORTED"}, timeout=180)
    job.raise_if_error()
    assert f"{job.url}/results/manifest" in job.result_uris
    manifest = parse_single_table(io.BytesIO(httpx.get(f"{job.url}/results/manifest", timeout=60).content)).to_table()
    assert len(manifest) == 6 and set(manifest["status"]) == {"OK"}
    assert {str(s) for s in manifest["survey"]} == {"Hi-GAL/160 um", "Hi-GAL/250 um"}
    stamp = fits.open(io.BytesIO(httpx.get(f"{job.url}/results/{manifest['file'][0]}", timeout=60).content))[0]
    assert stamp.header["BUNIT"] == "MJy/sr"
    job.delete()


def test_async_stamps_from_kept_tiles_keep_centre_and_flux_and_report_progress(server, catalogues) -> None:
    """No BKG, no REGRID: stamps after a tile's first are cut from the kept tile (vo/stamps/tiles.py).
    Each source sits within half a pixel of the centre, and its flux, after the test's own annulus
    median is taken off (numpy), is the catalogue's within 2%; the job document shows the progress."""
    cat = catalogues["70"]
    picks = isolated(cat, lrange=(-0.6, 0.6), brange=(-0.45, 0.45), count=4)
    table = "name,glon,glat,radius\n" + "".join(
        f"k{k},{cat['l'][i] % 360},{cat['b'][i]},{stamp_radius(cat['fwhma'][i])}\n" for k, i in enumerate(picks))
    url, phase = run_job(server, {"SURVEY": SURVEYS["70"]}, files={"SOURCES": ("s.csv", table.encode(), "text/csv")})
    assert phase == "COMPLETED", httpx.get(url + "/error").text
    job = assert_valid(httpx.get(url, timeout=30).content, UWS)
    progress = job.find(f"{{{UWS}}}jobInfo/{{{VLKB_NS}}}progress")
    assert progress is not None and progress.text == "4 of 4" and progress.get("total") == "4"
    manifest = parse_single_table(io.BytesIO(result(url, "manifest"))).to_table()
    assert list(manifest["status"]) == ["OK"] * 4
    for k, i in enumerate(picks):
        stamp = fits.open(io.BytesIO(result(url, manifest["file"][k])))[0]
        assert stamp.header["OBJECT"] == f"k{k}" and stamp.header["BUNIT"] == "Jy/pixel"
        l, b, fwhm = cat["l"][i], cat["b"][i], cat["fwhma"][i]  # noqa: E741
        dx, dy = offset_px(stamp, l, b)
        assert abs(dx) <= 0.5 and abs(dy) <= 0.5, (dx, dy)
        ny, nx = stamp.data.shape
        y, x = np.mgrid[0:ny, 0:nx]
        r = np.hypot(x - (nx - 1) / 2, y - (ny - 1) / 2)
        half = (min(nx, ny) - 1) / 2
        level = float(np.median(stamp.data[(r >= 0.7 * half) & (r <= half)]))
        wcs = WCS(stamp.header)
        x0, y0 = wcs.world_to_pixel_values(l % 360.0, b)
        aperture = np.hypot(x - x0, y - y0) <= 1.5 * fwhm / (math.sqrt(proj_plane_pixel_area(wcs)) * 3600)
        flux = float(np.sum(stamp.data[aperture], dtype=np.float64)) - level * int(aperture.sum())
        assert flux == pytest.approx(cat["flux"][i], rel=0.02), (i, flux, cat["flux"][i])


def test_a_stack_scaled_by_the_catalogue_size_has_the_common_width(server, catalogues) -> None:
    """STACKSIZE=fwhma over a QUERY of demo sources of different sizes: each stamp is scaled so its
    source's FWHM becomes the median FWHM (the generator's truth), so the stack's profile has that
    FWHM (second moment of the background-subtracted stack, numpy), within 15%."""
    cat = catalogues["70"]
    picks = isolated(cat, lrange=(-0.6, 0.6), brange=(-0.45, 0.45), count=12)
    fwhm = cat["fwhma"][picks]
    assert fwhm.max() > 1.3 * fwhm.min(), "the demo draws sources of different sizes"
    table = "name,glon,glat,fwhma\n" + "".join(f"z{k},{cat['l'][i] % 360},{cat['b'][i]},{cat['fwhma'][i]}\n"
                                               for k, i in enumerate(picks))
    url, phase = run_job(server, {"SURVEY": SURVEYS["70"], "SIZE": str(4 * fwhm.max() / 3600), "STACK": "mean",
                                  "BKG": "median", "STACKSIZE": "fwhma"},
                         files={"SOURCES": ("s.csv", table.encode(), "text/csv")})
    assert phase == "COMPLETED", httpx.get(url + "/error").text
    with tarfile.open(fileobj=io.BytesIO(result(url, "stamps.tar.gz")), mode="r:gz") as tar:
        stack = fits.open(io.BytesIO(tar.extractfile(next(n for n in tar.getnames() if n.startswith("stack_")))
                                     .read()))[0]
    common = float(np.median(fwhm))
    assert stack.header["STKSIZE"] * 3600 == pytest.approx(common, rel=1e-9)
    pix = math.sqrt(proj_plane_pixel_area(WCS(stack.header))) * 3600
    data = np.nan_to_num(stack.data.astype(np.float64))
    n = data.shape[0]
    y, x = np.mgrid[0:n, 0:n]
    c = (n - 1) / 2
    inside = np.hypot(x - c, y - c) <= 2.5 * common / pix  # the profile, not the annulus noise
    w = np.where(inside, data, 0.0)
    sigma = math.sqrt(np.sum(w * ((x - c) ** 2 + (y - c) ** 2)) / np.sum(w) / 2) * pix
    assert sigma * 2 * math.sqrt(2 * math.log(2)) == pytest.approx(common, rel=0.15)


def test_capabilities_and_the_registry_record_list_the_stamps_service(server) -> None:
    caps = "http://www.ivoa.net/xml/VOSICapabilities/v1.0"
    resp = httpx.get(server.url + "/stamps/capabilities", timeout=30)
    root = assert_valid(resp.content, caps, "http://www.ivoa.net/xml/VODataService/v1.1")
    found = {c.get("standardID"): c.find("interface/accessURL").text for c in root.iter("capability")}
    assert found["ivo://vlkb/std/stamps#sync-1.0"] == server.url + "/stamps/sync"
    assert found["ivo://vlkb/std/stamps#async-1.0"] == server.url + "/stamps/async"
    assert found["ivo://ivoa.net/std/VOSI#availability"] == server.url + "/stamps/availability"
    assert b"<vosi:available>true</vosi:available>" in httpx.get(server.url + "/stamps/availability").content
    record = httpx.get(server.url + "/oai", params={"verb": "ListRecords", "metadataPrefix": "ivo_vor"},
                       timeout=120).content
    service = [c for c in etree.fromstring(record).iter("capability")
               if c.get("standardID", "").startswith("ivo://vlkb/std/stamps#")]
    assert {c.get("standardID") for c in service} == {"ivo://vlkb/std/stamps#sync-1.0",
                                                       "ivo://vlkb/std/stamps#async-1.0"}
    assert all(c.find("interface").get("{http://www.w3.org/2001/XMLSchema-instance}type") == "vs:ParamHTTP"
               for c in service)


def test_async_regridded_stamps_keep_centre_and_flux_and_share_one_wcs(server, catalogues) -> None:
    """REGRID in a job: stamps after a tile's first are resampled from the kept tile's slab, their file
    from its header template (vo/stamps/regrid.py). Two isolated sources of each band, one stamp per
    band each: a source's stamps share one WCS exactly; on its own band a source sits within half a
    pixel of the centre (its flux-weighted centroid too) with its catalogue flux within 2%."""
    bands = ("70", "160", "250")
    picks = [(band, i) for band in bands
             for i in isolated(catalogues[band], lrange=(-0.55, 0.55), brange=(-0.4, 0.4), count=2)]
    size = max(stamp_radius(catalogues[band]["fwhma"][i]) for band, i in picks)
    table = "name,glon,glat\n" + "".join(f"r{k},{catalogues[band]['l'][i] % 360},{catalogues[band]['b'][i]}\n"
                                         for k, (band, i) in enumerate(picks))
    url, phase = run_job(server, {"SURVEY": [SURVEYS[b] for b in bands], "SIZE": str(size), "REGRID": "true",
                                  "BKG": "median"}, files={"SOURCES": ("s.csv", table.encode(), "text/csv")})
    assert phase == "COMPLETED", httpx.get(url + "/error").text
    manifest = parse_single_table(io.BytesIO(result(url, "manifest"))).to_table()
    assert list(manifest["status"]) == ["OK"] * len(picks) * len(bands)
    keys = ("NAXIS1", "NAXIS2", "CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2", "CDELT1", "CDELT2",
            "LONPOLE", "LATPOLE")
    with tarfile.open(fileobj=io.BytesIO(result(url, "stamps.tar.gz")), mode="r:gz") as tar:
        files = {(r["source"], r["survey"]): fits.open(io.BytesIO(tar.extractfile(r["file"]).read()))[0]
                 for r in manifest}
    for k, (band, i) in enumerate(picks):
        mine = [files[(f"r{k}", SURVEYS[b])] for b in bands]
        for s in mine[1:]:
            assert [s.header[key] for key in keys] == [mine[0].header[key] for key in keys]
        assert abs(mine[0].header["CDELT2"]) * 3600 == pytest.approx(6.0)  # the coarsest survey's pixel
        stamp = files[(f"r{k}", SURVEYS[band])]
        cat = catalogues[band]
        l, b, fwhm = cat["l"][i], cat["b"][i], cat["fwhma"][i]  # noqa: E741
        dx, dy = offset_px(stamp, l, b)
        assert abs(dx) <= 0.5 and abs(dy) <= 0.5, (dx, dy)
        flux = aperture_sum(stamp, l, b, 1.5 * fwhm)
        assert flux == pytest.approx(cat["flux"][i], rel=0.02), (band, i, flux, cat["flux"][i])
        # where the flux is: the centroid of the aperture (numpy) within half a pixel of the centre
        ny, nx = stamp.data.shape
        y, x = np.mgrid[0:ny, 0:nx]
        inside = np.hypot(x - (nx - 1) / 2 - dx, y - (ny - 1) / 2 - dy) <= 1.5 * fwhm / (abs(stamp.header["CDELT2"])
                                                                                        * 3600)
        w = stamp.data[inside].astype(np.float64)
        cx, cy = float(np.sum(x[inside] * w) / w.sum()), float(np.sum(y[inside] * w) / w.sum())
        assert abs(cx - (nx - 1) / 2) <= 0.5 and abs(cy - (ny - 1) / 2) <= 0.5, (band, cx, cy)
