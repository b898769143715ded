"""SODA async (UWS) and merge against the real server: several cuts, a manifest, merges, errors."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass

import httpx
import numpy as np
import psycopg
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.io.votable import parse_single_table
from astropy.wcs.utils import proj_plane_pixel_scales
from lxml import etree

from tests.xsd import assert_valid
from vo.cutout.bounds import header_wcs

UWS = "http://www.ivoa.net/xml/UWS/v1.0"
NSP = {"uws": UWS, "xlink": "http://www.w3.org/1999/xlink"}

pytestmark = pytest.mark.timeout(120)


@dataclass(frozen=True)
class Pair:
    """Two overlapping tiles of one sub-survey and a Galactic point in their overlap."""

    a: str
    b: str
    path_a: str
    glon: float
    glat: float


def _pair(database, collection: str, title_like: str) -> Pair:
    with psycopg.connect(database.url) as c:
        rows = c.execute(
            "SELECT a.obs_publisher_did, b.obs_publisher_did, da.path, a.s_ra, a.s_dec, b.s_ra, b.s_dec "
            "FROM ivoa.obscore a JOIN ivoa.obscore b ON a.obs_collection = b.obs_collection "
            "AND a.obs_title = b.obs_title AND a.obs_publisher_did < b.obs_publisher_did "
            "JOIN vlkb.datasets da ON da.publisher_did = a.obs_publisher_did "
            "WHERE a.obs_collection = %s AND a.obs_title LIKE %s AND a.s_region && b.s_region "
            "ORDER BY a.obs_publisher_did, b.obs_publisher_did LIMIT 1", (collection, title_like)).fetchone()
    ca = SkyCoord(rows[3], rows[4], unit="deg").galactic
    cb = SkyCoord(rows[5], rows[6], unit="deg").galactic
    m = ca.directional_offset_by(ca.position_angle(cb), ca.separation(cb) / 2)  # midway between the centres
    return Pair(rows[0], rows[1], rows[2], float(m.l.wrap_at("360d").deg), float(m.b.deg))


@pytest.fixture(scope="module")
def images(database) -> Pair:
    return _pair(database, "Hi-GAL", "%")


@pytest.fixture(scope="module")
def cubes(database) -> Pair:
    return _pair(database, "CHaMP", "13CO%")


@pytest.fixture(scope="module")
def private(database) -> str:
    with psycopg.connect(database.url) as c:
        return c.execute("SELECT obs_publisher_did FROM ivoa.obscore WHERE obs_collection = 'MeerKAT-private' "
                         "ORDER BY 1 LIMIT 1").fetchone()[0]


def _run(http: httpx.Client, prefix: str, data: dict | list) -> str:
    if isinstance(data, list):  # repeated parameters, in order
        pairs, data = data, {}
        for key, value in pairs:
            data.setdefault(key, []).append(value)
    r = http.post(prefix, data=data, params={"PHASE": "RUN"})
    assert r.status_code == 303, r.text
    url = r.headers["location"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        phase = http.get(url + "/phase").text
        if phase not in ("PENDING", "QUEUED", "EXECUTING"):
            return url
        time.sleep(0.1)
    raise AssertionError(f"{url} still {phase}")


def _results(http: httpx.Client, url: str) -> dict[str, str]:
    doc = http.get(url).content
    assert_valid(doc, UWS)
    root = etree.fromstring(doc)
    assert root.findtext("uws:phase", namespaces=NSP) == "COMPLETED", doc.decode()[:2000]
    return {r.get("id"): r.get("{http://www.w3.org/1999/xlink}href")
            for r in root.findall("uws:results/uws:result", NSP)}


def _manifest(http: httpx.Client, href: str):
    r = http.get(href)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-votable+xml")
    return parse_single_table(io.BytesIO(r.content)).to_table()


def test_async_cuts_equal_sync_and_failures_go_to_the_manifest(http, images, private) -> None:
    regions = [f"CIRCLE {images.glon} {images.glat} 0.02", "CIRCLE 120 40 0.1"]  # the second meets nothing
    data = [("ID", images.a), ("ID", private), ("ID", "../../etc/passwd"), ("POSSYS", "GALACTIC")]
    data += [("POS", r) for r in regions]
    url = _run(http, "/soda/async", data)
    results = _results(http, url)
    assert sorted(results) == ["cut-0001.fits", "manifest"]
    table = _manifest(http, results["manifest"])
    assert list(table["status"]) == ["OK"] + ["ERROR"] * 5
    assert "no overlap" in table["message"][1]
    # a dataset the caller may not read is reported exactly as a missing one
    hidden = [m.replace(i, "") for m, i in zip(table["message"][2:6:2], [private, "../../etc/passwd"], strict=True)]
    assert hidden[0] == hidden[1] and hidden[0].startswith("NotFoundFault")
    cut = http.get(results["cut-0001.fits"])
    assert cut.headers["content-type"] == "application/fits"
    sync = http.get("/soda/sync", params={"ID": images.a, "POS": regions[0], "POSSYS": "GALACTIC"})
    assert cut.content == sync.content and int(table["size"][0]) == len(cut.content)


def test_async_with_no_successful_cut_ends_in_error(http, private) -> None:
    url = _run(http, "/soda/async", {"ID": private, "POS": "CIRCLE 0 0 0.1"})
    assert http.get(url + "/phase").text == "ERROR"
    err = http.get(url + "/error")
    info = etree.fromstring(err.content).find(".//{*}INFO[@name='QUERY_STATUS']")
    assert info.get("value") == "ERROR" and info.text.startswith("NotFoundFault")


def _check_merge(hdul: fits.HDUList, pair: Pair) -> None:
    primary, cov = hdul[0], hdul["COVERAGE"]
    assert primary.header["VLKBNSRC"] == 2 and {primary.header["VLKBS001"], primary.header["VLKBS002"]} == {
        pair.a, pair.b}
    assert cov.data.shape == primary.data.shape and 1.9 < float(np.nanmax(cov.data)) <= 2.0 + 1e-5
    assert np.isfinite(primary.data[cov.data > 0]).all()
    src_scale = min(proj_plane_pixel_scales(header_wcs(fits.getheader(pair.path_a)).celestial))
    np.testing.assert_allclose(proj_plane_pixel_scales(header_wcs(primary.header).celestial), src_scale, rtol=1e-6)


def test_sync_merge_of_two_images(http, images) -> None:
    r = http.get("/soda/merge", params=[("ID", images.a), ("ID", images.b), ("POSSYS", "GALACTIC"),
                                         ("POS", f"CIRCLE {images.glon} {images.glat} 0.03")])
    assert r.status_code == 200, r.text[:500]
    assert r.headers["content-type"] == "application/fits"
    _check_merge(fits.open(io.BytesIO(r.content)), images)


def test_async_merge_of_two_cubes(http, cubes) -> None:
    url = _run(http, "/soda/merge/async", [("ID", cubes.a), ("ID", cubes.b), ("POSSYS", "GALACTIC"),
                                           ("POS", f"CIRCLE {cubes.glon} {cubes.glat} 0.05"), ("VELO", "-5 5")])
    results = _results(http, url)
    assert sorted(results) == ["manifest", "merge-0001.fits"]
    hdul = fits.open(io.BytesIO(http.get(results["merge-0001.fits"]).content))
    _check_merge(hdul, cubes)
    h = hdul[0].header
    v = (h["CRVAL3"] + h["CDELT3"] * (np.arange(h["NAXIS3"]) + 1 - h["CRPIX3"])) / 1000
    assert h["CUNIT3"] == "m/s" and h["RESTFRQ"] > 0 and v.min() >= -5 - 1e-6 and v.max() <= 5 + 1e-6
    table = _manifest(http, results["manifest"])
    assert list(table["status"]) == ["OK"]


def test_merge_option_of_async_soda(http, images) -> None:
    url = _run(http, "/soda/async", [("ID", images.a), ("ID", images.b), ("MERGE", "true"), ("POSSYS", "GALACTIC"),
                                     ("POS", f"CIRCLE {images.glon} {images.glat} 0.02")])
    assert sorted(_results(http, url)) == ["manifest", "merge-0001.fits"]


BAD_MERGE = [
    ({"POS": "CIRCLE 120 40 0.1"}, 400, "UsageError: ", "no overlap"),
    ({"POS": "CIRCLE 0 0 0"}, 400, "UsageError: ", "radius"),
    ({"POS": "CIRCLE 0 0 -1"}, 400, "UsageError: ", "radius"),
    ({"POS": "POLYGON 0 0 1 1"}, 400, "UsageError: ", "3 vertices"),
    ({"BAND": "2e-4 1e-4"}, 400, "UsageError: ", "greater than"),
    ({"POS": None}, 400, "UsageError: ", "region"),
    ({"MORE_ID": "ivo://vlkb.test/vlkb?nope/nope.fits"}, 404, "NotFoundFault: ", "no such dataset"),
    ({"MORE_ID": "../../etc/passwd"}, 404, "NotFoundFault: ", "no such dataset"),
    ({"MORE_ID": "PRIVATE"}, 404, "NotFoundFault: ", "no such dataset"),
    ({"MORE_ID": "CUBE"}, 400, "UsageError: ", "surveys"),
]


@pytest.mark.parametrize(("extra", "status", "code", "text"), BAD_MERGE)
def test_bad_merges(http, images, cubes, private, extra, status, code, text) -> None:
    params = {"ID": [images.a, images.b], "POS": f"CIRCLE {images.glon} {images.glat} 0.02", "POSSYS": "GALACTIC"}
    params.update(extra)
    more = params.pop("MORE_ID", None)
    if more is not None:
        params["ID"] = [images.a, {"PRIVATE": private, "CUBE": cubes.a}.get(more, more)]
    if params["POS"] is None:
        del params["POS"]
    resp = http.get("/soda/merge", params=params)
    assert resp.status_code == status, resp.text[:300]
    info = etree.fromstring(resp.content).find(".//{*}INFO[@name='QUERY_STATUS']")
    assert info.get("value") == "ERROR" and info.text.startswith(code) and text in info.text, info.text
