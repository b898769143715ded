"""SODA 1.0 sync cutouts over HTTP: pyvo through DataLink, the ViaLactea client's form, and errors."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import numpy as np
import psycopg
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS
from lxml import etree
from pyvo.dal.adhoc import DatalinkResults, SodaQuery

from vo.soda import INLINE_BYTES

C = 299_792_458.0


@dataclass(frozen=True)
class Demo:
    cube: str
    image: str
    private: str
    cube_path: str
    image_path: str


@pytest.fixture(scope="module")
def demo(database) -> Demo:
    with psycopg.connect(database.url) as c:
        def first(where: str) -> tuple[str, str]:
            return c.execute("SELECT o.obs_publisher_did, d.path FROM ivoa.obscore o JOIN vlkb.datasets d "
                             f"ON d.publisher_did = o.obs_publisher_did WHERE {where} "
                             "ORDER BY o.obs_publisher_did LIMIT 1").fetchone()
        cube, cube_path = first("obs_collection = 'CHaMP' AND obs_title LIKE '13CO%'")
        image, image_path = first("obs_collection = 'Hi-GAL'")
        private, _ = first("obs_collection = 'MeerKAT-private'")
        return Demo(cube, image, private, cube_path, image_path)


def _fits(resp: httpx.Response) -> fits.PrimaryHDU:
    assert resp.status_code == 200, resp.text[:500]
    assert resp.headers["content-type"] == "application/fits"
    assert "_cutout.fits" in resp.headers["content-disposition"]
    return fits.open(io.BytesIO(resp.content))[0]


def _centre(hdu: fits.PrimaryHDU) -> tuple[float, float]:
    wcs = WCS(hdu.header).celestial
    ny, nx = hdu.data.shape[-2:]
    return wcs.pixel_to_world_values((nx - 1) / 2, (ny - 1) / 2)


def _original(path: str, hdu: fits.PrimaryHDU) -> np.ndarray:
    src = fits.getheader(path)
    off = [int(round(src[f"CRPIX{i}"] - hdu.header[f"CRPIX{i}"])) for i in range(1, src["NAXIS"] + 1)]
    return fits.getdata(path)[tuple(slice(o, o + n) for o, n in zip(reversed(off), hdu.data.shape, strict=True))]


def test_pyvo_cutout_through_datalink(server, demo) -> None:
    dl = DatalinkResults.from_result_url(f"{server.url}/datalink/links?ID={quote(demo.cube, safe='')}")
    proc = dl.get_first_proc()
    assert proc.service_def == "soda-sync"
    query = SodaQuery.from_resource(proc, dl.get_adhocservice_by_id("soda-sync"))
    centre = SkyCoord(0.64, 0.0, unit="deg", frame="galactic").icrs  # CIRCLE is ICRS unless POSSYS says
    query.circle = (centre.ra.deg, centre.dec.deg, 0.05)
    f0 = fits.getheader(demo.cube_path)["RESTFRQ"]
    wl = sorted(C / (f0 * (1 - np.array([-10e3, 10e3]) / C)))
    query.band = (wl[0] * (1 - 1e-9), wl[1] * (1 + 1e-9))
    hdu = fits.open(io.BytesIO(query.execute_stream().read()))[0]
    assert hdu.header["VLKBSRC"] == demo.cube and hdu.header["CUNIT3"] and hdu.header["RESTFRQ"] == f0
    lon, lat = _centre(hdu)
    assert abs(lon - 0.64) < 0.006 and abs(lat) < 0.006  # within a pixel (0.0056 deg)
    v = WCS(hdu.header).sub([3]).wcs_pix2world(np.arange(hdu.data.shape[0]), 0)[0] / 1000
    assert v.min() >= -10 - 1e-6 and v.max() <= 10 + 1e-6 and len(v) == 17
    np.testing.assert_array_equal(hdu.data, _original(demo.cube_path, hdu))


def test_vialactea_form_range_galactic(server, demo) -> None:
    # the client percent-encodes all but ":/&?=", so ID arrives with raw '?', ':' and '/'
    url = f"{server.url}/soda/sync?ID={demo.image}&POS=RANGE%200.28%200.32%20-0.31%20-0.27&POSSYS=GALACTIC"
    hdu = _fits(httpx.get(url, timeout=30))
    lon, lat = _centre(hdu)
    assert abs(lon - 0.30) < 0.001 and abs(lat + 0.29) < 0.001
    np.testing.assert_array_equal(hdu.data, _original(demo.image_path, hdu))
    assert hdu.header["VLKBREG"].startswith("RANGE 0.28 0.32 -0.31 -0.27 GALACTIC")


def test_post_and_velo_on_a_cube(http, demo) -> None:
    resp = http.post("/soda/sync", data={"ID": demo.cube, "CIRCLE": "0.64 0 0.02", "POSSYS": "GALACTIC",
                                         "VELO": "-10 10"})
    hdu = _fits(resp)
    assert hdu.header["NAXIS3"] == 17
    assert int(resp.headers["content-length"]) == len(resp.content)


def test_region_across_l0(http, demo) -> None:
    src = WCS(fits.getheader(demo.image_path))
    left, _ = src.pixel_to_world_values(0, 0)
    right, _ = src.pixel_to_world_values(fits.getheader(demo.image_path)["NAXIS1"] - 1, 0)
    if not (right > 180 and left < 180):
        pytest.skip("the first Hi-GAL demo map does not cross l = 0")
    hdu = _fits(http.get("/soda/sync", params={"ID": demo.image, "POS": "RANGE -0.01 0.01 -0.3 -0.28",
                                                 "POSSYS": "GALACTIC"}))
    wcs = WCS(hdu.header)
    lons = [float(wcs.pixel_to_world_values(x, 0)[0]) for x in (0, hdu.data.shape[1] - 1)]
    assert 0 < lons[0] < 0.02 and 359.98 < lons[1] < 360
    np.testing.assert_array_equal(hdu.data, _original(demo.image_path, hdu))


BAD = [
    ({"POS": "CIRCLE 120 40 0.1", "POSSYS": "GALACTIC"}, 400, "UsageError: ", "no overlap"),
    ({"CIRCLE": "0.3 -0.3 0", "POSSYS": "GALACTIC"}, 400, "UsageError: ", "radius"),
    ({"CIRCLE": "0.3 -0.3 -1"}, 400, "UsageError: ", "radius"),
    ({"POLYGON": "0.3 -0.3 0.4 -0.3"}, 400, "UsageError: ", "3 vertices"),
    ({"BAND": "2e-4 1e-4"}, 400, "UsageError: ", "greater than"),
    ({"POS": "CIRCLE 0.3 95 0.1"}, 400, "UsageError: ", "latitude"),
    ({"POS": "BOX 1 2 3 4"}, 400, "UsageError: ", "unknown shape"),
    ({"POSSYS": "FK4"}, 400, "UsageError: ", "POSSYS"),
    ({"PIXELS": "[5000:6000]"}, 400, "UsageError: ", "no overlap"),
    ({"ID": ["A", "B"]}, 400, "MultiValuedParamNotSupported: ", "ID"),
    ({"ID": None}, 400, "UsageError: ", "ID"),
    ({"ID": "ivo://vlkb.test/vlkb?nope/nope.fits"}, 404, "NotFoundFault: ", "no such dataset"),
    ({"ID": "../../etc/passwd"}, 404, "NotFoundFault: ", "no such dataset"),
    ({"ID": "/etc/passwd"}, 404, "NotFoundFault: ", "no such dataset"),
    ({"ID": "PRIVATE"}, 404, "NotFoundFault: ", "no such dataset"),
]


@pytest.mark.parametrize(("extra", "status", "code", "text"), BAD)
def test_bad_requests(http, demo, extra, status, code, text) -> None:
    params = {"ID": demo.image, **extra}
    if params["ID"] is None:
        del params["ID"]
    elif params["ID"] == "PRIVATE":
        params["ID"] = demo.private
    resp = http.get("/soda/sync", params=params)
    assert resp.status_code == status, resp.text[:300]
    info = etree.fromstring(resp.content).find(".//{*}INFO[@name='QUERY_STATUS']")
    assert info.get("value") == "ERROR" and info.text.startswith(code) and text in info.text
    assert b"root:" not in resp.content


def test_private_and_unknown_ids_answer_alike(http, demo) -> None:
    a = http.get("/soda/sync", params={"ID": demo.private, "POS": "CIRCLE 0 0 0.1"})
    b = http.get("/soda/sync", params={"ID": demo.private + "x", "POS": "CIRCLE 0 0 0.1"})
    assert a.status_code == b.status_code == 404
    assert a.content.replace(demo.private.encode(), b"") == b.content.replace(demo.private.encode() + b"x", b"")


@pytest.mark.parametrize("radius", [0.02, 0.5], ids=["answered whole", "streamed"])
def test_a_dataset_given_another_file_is_cut_from_that_file(http, demo, database, tmp_path, radius) -> None:
    """The service remembers the file of a DID cut lately, to plan its next cut while the lookup
    runs (issue 16); the file the lookup gives is the one read. The change is announced by the
    database (vo/lookups.py), so the new file is read once the service has heard it."""
    params = {"ID": demo.cube, "CIRCLE": f"0.64 0 {radius}", "POSSYS": "GALACTIC"}
    first = http.get("/soda/sync", params=params)
    assert (len(first.content) > INLINE_BYTES) == (radius > 0.1)
    before = _fits(first)
    np.testing.assert_array_equal(before.data, _original(demo.cube_path, before))
    moved = tmp_path / "moved.fits"
    with fits.open(demo.cube_path) as src:
        assert src[0].data.dtype.kind == "f"
        fits.PrimaryHDU(src[0].data + 1, src[0].header).writeto(moved)
    with psycopg.connect(database.url, autocommit=True) as c:
        c.execute("UPDATE vlkb.datasets SET path = %s WHERE publisher_did = %s", (str(moved), demo.cube))
        try:
            deadline = time.monotonic() + 5
            while True:  # the announcement reaches the service in a moment, not with the commit
                after = _fits(http.get("/soda/sync", params=params))
                if not np.array_equal(after.data, before.data) or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        finally:
            c.execute("UPDATE vlkb.datasets SET path = %s WHERE publisher_did = %s", (demo.cube_path, demo.cube))
    assert after.data.shape == before.data.shape
    np.testing.assert_array_equal(after.data, _original(str(moved), after))
    np.testing.assert_array_equal(after.data, before.data + 1)
