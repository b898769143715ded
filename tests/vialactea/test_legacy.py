"""The legacy FITS-DB API (vlkb_search, vlkb_cutout, vlkb_merge) read the way the client's xmlparser reads it."""

from __future__ import annotations

import subprocess
from urllib.parse import quote, urlsplit
from xml.etree import ElementTree

import httpx
import psycopg
import pytest
from astropy.coordinates import SkyCoord

from tests.conftest import VLKB
from tests.vialactea.legacy_client import (
    circle_points,
    client_filter,
    covers,
    parse_cut,
    parse_search,
    range_points,
)

pytestmark = pytest.mark.timeout(120)
SEARCH = "/vlkb/datasets/vlkb_search"


def reencoded(url: str) -> str:
    """What the client sends for a URL taken from the XML: every query value percent-encoded again."""
    parts = urlsplit(url)
    pairs = [p.split("=", 1) for p in parts.query.split("&")]
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in pairs)
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{query}"


def truth(database, lon: float, lat: float, r: float) -> set[str]:
    """Public datasets whose Galactic footprint meets the circle, read as the database owner."""
    with psycopg.connect(database.url) as c:
        rows = c.execute(
            "SELECT o.obs_publisher_did FROM ivoa.obscore o WHERE o.s_region_galactic && "
            "scircle(spoint(radians(%s), radians(%s)), radians(%s)) AND NOT EXISTS (SELECT 1 FROM "
            "vlkb.survey_policies p WHERE p.survey = o.obs_collection AND cardinality(p.groups) > 0)",
            (lon, lat, r)).fetchall()
    return {row[0] for row in rows}


def test_search_layout_codes_and_policies(http, database, image, private) -> None:
    r = http.get(SEARCH, params={"l": image.glon, "b": image.glat, "r": 0.02, "vl": -500000, "vu": 500000})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    cubes = parse_search(r.content)
    assert {c.did for c in cubes} == truth(database, image.glon, image.glat, 0.02)
    assert private.did not in {c.did for c in cubes}
    mine = next(c for c in cubes if c.did == image.did)
    assert (mine.survey, mine.species, mine.transition, mine.code) == ("Hi-GAL", "Continuum", "70 um", 3)
    assert all(c.code in (2, 3, 4, 5) for c in cubes) and len(client_filter(cubes)) == len(cubes)
    for c in cubes:
        assert len(c.corners) == 4
        assert c.cutout_url.startswith(f"{http.base_url}/vlkb/datasets/vlkb_cutout?pubdid={c.did}&")
    # the datacube count and the echo of the request
    root = ElementTree.fromstring(r.content)
    assert root.findtext("DatacubeCount") == str(len(cubes))
    assert root.find("input/username") is not None and root.findtext("input/r") == "0.02"
    # cubes carry their velocity unit and rest frequency
    cube_search = parse_search(http.get(SEARCH, params={"l": image.glon, "b": image.glat, "r": 1,
                                                        "surveyname": "CHaMP", "species": "13CO"}).content)
    assert cube_search and all(c.velocity_unit in ("m/s", "km/s") and c.transition == "1-0" for c in cube_search)
    champ = ElementTree.fromstring(http.get(SEARCH, params={"l": image.glon, "b": image.glat, "r": 1,
                                                          "surveyname": "CHaMP"}).content)
    rest = {s.findtext("Species"): float(s.findtext("RestFreq")) for s in champ.findall("survey")}
    assert rest["13CO"] == pytest.approx(110.201354e9, rel=1e-6), "13CO 1-0 rest frequency, Hz"


def test_search_box_and_velocity(http, cube) -> None:
    # dl and db are full widths: a 0.04 x 0.04 box around the centre is inside the tile
    box = parse_search(http.get(SEARCH, params={"l": cube.glon, "b": cube.glat, "dl": 0.04, "db": 0.04,
                                                "surveyname": "CHaMP"}).content)
    assert cube.did in {c.did for c in box} and next(c for c in box if c.did == cube.did).code == 3
    outside = parse_search(http.get(SEARCH, params={"l": cube.glon, "b": cube.glat, "r": 0.02, "surveyname": "CHaMP",
                                                    "vl": cube.vel_max + 100, "vu": cube.vel_max + 200}).content)
    assert cube.did not in {c.did for c in outside}


def test_restricted_survey_for_its_group(http, server, private) -> None:
    token = subprocess.run([VLKB, "dev-token", "--user", "alice", "--groups", "survey-team"], env=server.env,
                           capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    auth = {"Authorization": f"Bearer {token}"}
    found = parse_search(http.get(SEARCH, params={"l": private.glon, "b": private.glat, "r": 0.02},
                                  headers=auth).content)
    mine = [c for c in found if c.did == private.did]
    assert mine and mine[0].survey == "MeerKAT-private"
    xml = http.get(reencoded(mine[0].cutout_url), headers=auth)
    assert xml.status_code == 200, xml.text
    url = parse_cut(xml.content)["url"]
    assert httpx.get(url, headers=auth).status_code == 200
    assert httpx.get(url).status_code == 404, "another caller cannot fetch alice's cutout"
    assert http.get(reencoded(mine[0].cutout_url)).status_code == 404


def test_cutout_followed_as_given(http, image) -> None:
    cubes = parse_search(http.get(SEARCH, params={"l": image.glon, "b": image.glat, "r": 0.02}).content)
    mine = next(c for c in cubes if c.did == image.did)
    for url in (mine.cutout_url, reencoded(mine.cutout_url)):
        answer = http.get(url + "&nullvals=1", follow_redirects=False)
        assert answer.status_code == 200, answer.text
        cut = parse_cut(answer.content)
        assert cut["cuts"] == 1 and 0 <= cut["percent"] < 95
        download = httpx.get(str(cut["url"]).replace("+", "%2B"), follow_redirects=False)
        assert download.status_code == 200 and download.headers["content-type"] == "application/fits"
        assert covers(download.content, circle_points(image.glon, image.glat, 0.02))


def _overlap_point(database) -> tuple[float, float, str]:
    """A point in the overlap of two Hi-GAL 70 um tiles."""
    with psycopg.connect(database.url) as conn:
        row = conn.execute(
            "SELECT a.s_ra, a.s_dec, b.s_ra, b.s_dec FROM ivoa.obscore a JOIN ivoa.obscore b "
            "ON a.obs_collection = b.obs_collection AND a.obs_title = b.obs_title "
            "AND a.obs_publisher_did < b.obs_publisher_did WHERE a.obs_collection = 'Hi-GAL' "
            "AND a.obs_title LIKE '%%70 um' AND a.s_region && b.s_region ORDER BY a.obs_publisher_did LIMIT 1"
        ).fetchone()
    ca = SkyCoord(row[0], row[1], unit="deg").galactic
    cb = SkyCoord(row[2], row[3], unit="deg").galactic
    m = ca.directional_offset_by(ca.position_angle(cb), ca.separation(cb) / 2)
    return float(m.l.wrap_at("360d").deg), float(m.b.deg), "Hi-GAL"


def test_merge_from_the_mosaic_url(http, database) -> None:
    lon, lat, _ = _overlap_point(database)
    cubes = parse_search(http.get(SEARCH, params={"l": lon, "b": lat, "dl": 0.04, "db": 0.04,
                                                  "surveyname": "Hi-GAL", "transition": "70 um"}).content)
    assert len(cubes) >= 2 and all(c.mosaic_url for c in cubes)
    assert len({c.mosaic_url for c in cubes}) == 1
    answer = http.get(reencoded(cubes[0].mosaic_url) + "&nullvals=true")
    assert answer.status_code == 200, answer.text
    cut = parse_cut(answer.content)
    assert cut["cuts"] == len(cubes) and cut["percent"] is not None
    merged = httpx.get(str(cut["url"]), follow_redirects=False)
    assert merged.status_code == 200
    assert covers(merged.content, range_points(lon - 0.02, lon + 0.02, lat - 0.02, lat + 0.02))


@pytest.mark.parametrize("path, params, status, text", [
    ("vlkb_search", {"b": "0", "r": "0.1"}, 400, "l: missing"),
    ("vlkb_search", {"l": "x", "b": "0", "r": "0.1"}, 400, "not a number"),
    ("vlkb_search", {"l": "10", "b": "0"}, 400, "r: missing"),
    ("vlkb_search", {"l": "10", "b": "95", "r": "0.1"}, 400, "latitude"),
    ("vlkb_search", {"l": "10", "b": "0", "r": "0.1", "vl": "5"}, 400, "vu: missing"),
    ("vlkb_cutout", {"l": "10", "b": "0", "r": "0.1"}, 400, "pubdid: missing"),
    ("vlkb_cutout", {"pubdid": "ivo://vlkb.test/vlkb?no/such.fits", "l": "10", "b": "0", "r": "0.1"}, 404,
     "no such dataset"),
    ("vlkb_merge", {"pubdid": "a;b", "l": "10", "b": "0", "r": "0.1"}, 400, "surveyname"),
])
def test_bad_input(http, path, params, status, text) -> None:
    r = http.get(f"/vlkb/datasets/{path}", params=params)
    assert r.status_code == status, r.text
    info = ElementTree.fromstring(r.content).find(".//{*}INFO[@name='QUERY_STATUS']")
    assert info is not None and info.get("value") == "ERROR" and text in info.text


def test_cutout_outside_the_dataset_is_an_error(http, image, private) -> None:
    far = {"l": (image.glon + 180) % 360, "b": 40, "r": 0.05}
    r = http.get("/vlkb/datasets/vlkb_cutout", params={"pubdid": image.did, **far})
    assert r.status_code == 400 and b"overlap" in r.content
    hidden = http.get("/vlkb/datasets/vlkb_cutout", params={"pubdid": private.did, "l": private.glon,
                                                            "b": private.glat, "r": 0.02})
    assert hidden.status_code == 404
