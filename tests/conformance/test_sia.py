"""SIA 2.0 over HTTP with pyvo: each search returns exactly the datasets whose footprints
(computed independently from the demo FITS files with astropy.wcs) match; the restricted
survey never shows anonymously; every malformed parameter is a 400 DALI error naming it."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest
import pyvo
from astropy.coordinates import SkyCoord
from astropy.io.votable import parse_single_table
from lxml import etree

from tests.conformance import footprints as fp
from tests.xsd import assert_valid

CAPS = "http://www.ivoa.net/xml/VOSICapabilities/v1.0"
VS = "http://www.ivoa.net/xml/VODataService/v1.1"
AVAIL = "http://www.ivoa.net/xml/VOSIAvailability/v1.0"
PRIVATE = "meerkat-private"


@pytest.fixture(scope="module")
def sia(server) -> pyvo.dal.SIA2Service:
    return pyvo.dal.SIA2Service(server.url + "/sia")


@pytest.fixture(scope="module")
def data_dir(database) -> Path:
    return database.home / "data"


def keys(results) -> set[str]:
    """``survey-dir/file.fits`` of each result row (the part of the DID after '?')."""
    return {str(did).split("?", 1)[1] for did in results["obs_publisher_did"]}


def public_count(data_dir: Path) -> int:
    return len([f for f in fp.footprints(data_dir) if not f.survey_dir.startswith(PRIVATE)])


def files_of(data_dir: Path, prefix: str) -> int:
    return len([f for f in fp.footprints(data_dir) if f.survey_dir.startswith(prefix)])


def crossing_l0(data_dir: Path, want: set[str]) -> set[str]:
    """The files among ``want`` whose footprint straddles l = 0."""
    return {f.key for f in fp.footprints(data_dir) if f.key in want and f.crosses_l0}


def gal_to_icrs(lon: float, lat: float) -> tuple[float, float]:
    c = SkyCoord(lon, lat, unit="deg", frame="galactic").icrs
    return float(c.ra.deg), float(c.dec.deg)


def status_of(body: bytes) -> tuple[str, str]:
    infos = etree.fromstring(body).findall(".//{*}INFO[@name='QUERY_STATUS']")
    assert infos, body[:300]
    return infos[-1].get("value"), infos[-1].text or ""


def test_capabilities_and_availability(sia, server, http: httpx.Client) -> None:
    assert sia.query_ep == server.url + "/sia/query"
    resp = http.get("/sia/capabilities")
    root = assert_valid(resp.content, CAPS, VS)
    std = {c.get("standardID") for c in root.iter("capability")}
    assert {"ivo://ivoa.net/std/SIA#query-2.0", "ivo://ivoa.net/std/VOSI#availability"} <= std
    avail = http.get("/sia/availability")
    assert_valid(avail.content, AVAIL)
    assert b"<vosi:available>true</vosi:available>" in avail.content


def test_everything_public_and_all_obscore_columns(sia, data_dir) -> None:
    table = sia.search(maxrec=1000).to_table()
    on_disk = {f.key for f in fp.footprints(data_dir) if not f.survey_dir.startswith(PRIVATE)}
    assert keys(table) == on_disk
    from schemas import find_table

    assert table.colnames == [c.name for c in find_table("ivoa.obscore").published_columns]
    assert table["em_min"].unit == "m"
    assert len(table["s_region"][0]) == 8  # four corners, DALI polygon in degrees


def test_circle_icrs(sia, data_dir) -> None:
    ra, dec = gal_to_icrs(1.05, 0.3)
    want = fp.expected(data_dir, fp.circle(ra, dec, 0.1, "icrs"))
    assert 0 < len(want) < public_count(data_dir)
    assert keys(sia.search(pos=(ra, dec, 0.1))) == want


def test_circle_galactic_across_l0(sia, data_dir) -> None:
    want = fp.expected(data_dir, fp.circle(0.0, 0.7, 0.05, "galactic"))
    assert 0 < len(want) < public_count(data_dir) and crossing_l0(data_dir, want)
    assert keys(sia.search(pos=(0.0, 0.7, 0.05), POSSYS="GALACTIC")) == want
    # a centre written as 360 is the same place
    assert keys(sia.search(pos=(360.0, 0.7, 0.05), POSSYS="galactic")) == want


def test_range_across_l0(server, data_dir) -> None:
    """The ViaLactea client sends l - dl, which is negative near l = 0 (pyvo refuses that, httpx does not)."""
    want = fp.expected(data_dir, fp.box(-0.1, 0.1, 0.4, 0.45, "galactic"))
    assert 0 < len(want) < public_count(data_dir) and crossing_l0(data_dir, want)
    for pos in ("RANGE -0.1 0.1 0.4 0.45", "RANGE 359.9 360.1 0.4 0.45"):
        resp = httpx.get(server.url + "/sia/query", params={"POS": pos, "POSSYS": "GALACTIC"}, timeout=30)
        assert resp.status_code == 200, resp.text
        table = parse_single_table(io.BytesIO(resp.content)).to_table()
        assert keys(table) == want, pos


def test_range_written_across_l0_wraps(server, data_dir) -> None:
    """DALI 1.2 section 3.9: "359 1 -1 1" is the 2-degree range across the meridian."""
    want = fp.expected(data_dir, fp.box(359.9, 360.1, 0.4, 0.45, "galactic"))
    assert crossing_l0(data_dir, want)
    resp = httpx.get(server.url + "/sia/query", params={"POS": "RANGE 359.9 0.1 0.4 0.45", "POSSYS": "GALACTIC"},
                     timeout=30)
    assert resp.status_code == 200, resp.text
    assert keys(parse_single_table(io.BytesIO(resp.content)).to_table()) == want
    # a range whose ends are the same meridian is refused, saying how to write every longitude
    resp = httpx.get(server.url + "/sia/query", params={"POS": "RANGE 360 0 0 1"}, timeout=30)
    assert resp.status_code == 400 and b"write 0 360 for every longitude" in resp.content


def test_range_pyvo(sia, data_dir) -> None:
    want = fp.expected(data_dir, fp.box(359.7, 360.3, -0.8, -0.7, "galactic"))
    assert 0 < len(want) < public_count(data_dir)
    # pyvo accepts 0..360 only: the same box as two ranges, OR-ed
    got = sia.search(pos=[(359.7, 360.0, -0.8, -0.7), (0.0, 0.3, -0.8, -0.7)], POSSYS="GALACTIC")
    assert keys(got) == want


def test_polygons(sia, data_dir) -> None:
    square = [(359.5, -0.5), (359.6, -0.5), (359.6, -0.4), (359.5, -0.4)]
    want = fp.expected(data_dir, fp.polygon(square, "galactic"))
    assert 0 < len(want) < public_count(data_dir)
    flat = tuple(v for pair in square for v in pair)
    assert keys(sia.search(pos=flat, POSSYS="GALACTIC")) == want

    triangle = [gal_to_icrs(*p) for p in [(0.5, -0.3), (0.7, -0.3), (0.6, -0.1)]]
    want = fp.expected(data_dir, fp.polygon(triangle, "icrs"))
    assert 0 < len(want) < public_count(data_dir)
    assert keys(sia.search(pos=tuple(v for pair in triangle for v in pair))) == want


def test_band_and_or_rules(sia, data_dir) -> None:
    mips = fp.in_band(data_dir, 2e-5, 3e-5)
    assert mips and all(k.startswith("mipsgal") for k in mips)
    assert keys(sia.search(band=(2e-5, 3e-5))) == mips
    higal70 = fp.in_band(data_dir, 6.5e-5, 7e-5)
    # repeated BAND: OR; open ends
    assert keys(sia.search(band=[(2e-5, 3e-5), (6.5e-5, 7e-5)])) == mips | higal70
    assert keys(sia.search(band=(float("-inf"), 3e-5))) == fp.in_band(data_dir, 0, 3e-5)
    cubes = fp.in_band(data_dir, 2.5e-3, 3e-3)
    assert cubes and all(k.startswith("champ") for k in cubes)
    # different parameters: AND
    ra, dec = gal_to_icrs(1.05, 0.3)
    near = fp.expected(data_dir, fp.circle(ra, dec, 0.1, "icrs"))
    assert keys(sia.search(pos=(ra, dec, 0.1), band=(2.5e-3, 3e-3))) == near & cubes


def test_collection_and_strings(sia, data_dir) -> None:
    n_champ, n_mips = files_of(data_dir, "champ"), files_of(data_dir, "mipsgal")
    champ = sia.search(collection="CHaMP")
    assert len(champ) == n_champ > 0 and set(champ["obs_collection"]) == {"CHaMP"}
    both = sia.search(collection=["CHaMP", "MIPSGAL"], data_type="cube")
    assert set(both["obs_collection"]) == {"CHaMP"} and len(both) == n_champ
    assert len(sia.search(collection=["CHaMP", "MIPSGAL"])) == n_champ + n_mips
    assert len(sia.search(facility="Spitzer", instrument="MIPS")) == n_mips
    did = str(champ["obs_publisher_did"][0])
    assert list(sia.search(publisher_did=did)["obs_publisher_did"]) == [did]
    assert len(sia.search(calib_level=2, collection="MIPSGAL")) == n_mips
    assert len(sia.search(calib_level=3)) == 0


def test_private_survey_never_shows(sia, data_dir, http: httpx.Client) -> None:
    region = fp.circle(0.0, 0.0, 0.01, "galactic")
    assert any(k.startswith(PRIVATE) for k in fp.expected(data_dir, region, public_only=False))
    got = keys(sia.search(pos=(0.0, 0.0, 0.01), POSSYS="GALACTIC"))
    assert got == fp.expected(data_dir, region)
    assert len(sia.search(collection="MeerKAT-private")) == 0
    resp = http.get("/sia/query", params={"FACILITY": "MeerKAT"})
    assert resp.status_code == 200 and b"meerkat" not in resp.content.lower()


def test_maxrec_overflow_post_and_formats(http: httpx.Client) -> None:
    resp = http.post("/sia/query", data={"COLLECTION": "Hi-GAL", "MAXREC": "3"})
    assert resp.status_code == 200
    assert status_of(resp.content)[0] == "OVERFLOW"
    assert resp.content.count(b"<TR>") == 3
    csv = http.get("/sia/query", params={"collection": "CHaMP", "responseformat": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    assert len(csv.text.strip().splitlines()) == 7
    binary = http.get("/sia/query", params={"COLLECTION": "CHaMP", "RESPONSEFORMAT": "votable"})
    assert b"BINARY2" in binary.content


BAD = [
    ({"POS": "CIRCLE 10 20"}, "POS"),
    ({"POS": "CIRCLE 10 20 0"}, "POS"),
    ({"POS": "CIRCLE 10 20 -1"}, "POS"),
    ({"POS": "CIRCLE a 20 1"}, "POS"),
    ({"POS": "CIRCLE 10 95 1"}, "POS"),
    ({"POS": "CIRCLE NaN 0 1"}, "POS"),
    ({"POS": "RANGE 1 2 3"}, "POS"),
    ({"POS": "RANGE 361 1 0 1"}, "POS"),
    ({"POS": "RANGE 0 1 1 0"}, "POS"),
    ({"POS": "RANGE 0 1 -91 0"}, "POS"),
    ({"POS": "POLYGON 0 0 1 1"}, "POS"),
    ({"POS": "POLYGON 0 0 1 0 1"}, "POS"),
    ({"POS": "POLYGON 0 0 1 0 0 0"}, "POS"),
    ({"POS": "BOX 0 0 1 1"}, "POS"),
    ({"POSSYS": "FK4"}, "POSSYS"),
    ({"POSSYS": ["ICRS", "GALACTIC"]}, "POSSYS"),
    ({"BAND": "2 1"}, "BAND"),
    ({"BAND": "1 2 3"}, "BAND"),
    ({"BAND": "x"}, "BAND"),
    ({"BAND": "1_000 2000"}, "BAND"),
    ({"TIME": "55000 54000"}, "TIME"),
    ({"FOV": "1 nan"}, "FOV"),
    ({"SPATRES": "+Inf"}, "SPATRES"),
    ({"EXPTIME": "-1 -2"}, "EXPTIME"),
    ({"TIMERES": "a b"}, "TIMERES"),
    ({"SPECRP": "1 2 3"}, "SPECRP"),
    ({"POL": "Z"}, "POL"),
    ({"CALIB": "x"}, "CALIB"),
    ({"CALIB": "9"}, "CALIB"),
    ({"MAXREC": "ten"}, "MAXREC"),
    ({"MAXREC": "-1"}, "MAXREC"),
    ({"RESPONSEFORMAT": "image/png"}, "RESPONSEFORMAT"),
    ({"BAND": "-1e-6 2e-6"}, "BAND"),
    ({"FOV": "-1 1"}, "FOV"),
    ({"SPATRES": "-5"}, "SPATRES"),
    ({"SPECRP": "-Inf -3"}, "SPECRP"),
    ({"DPTYPE": "spectrum"}, "DPTYPE"),
    ({"ID": "ivo://x\x00y"}, "ID"),
    ({"TIME": "1 x"}, "TIME"),
    ({"POS": "CIRCLE 10 20 1e400"}, "POS"),
    ({"POS": "POLYGON 0 0 1 0 0 1", "POSSYS": "FK5"}, "POSSYS"),
]


@pytest.mark.parametrize("params, name", BAD, ids=[f"{n}={v}" for (v, n) in ((p[n], n) for p, n in BAD)])
def test_bad_parameters_are_dali_errors(http: httpx.Client, params, name) -> None:
    resp = http.get("/sia/query", params=params)
    assert resp.status_code == 400, resp.text[:300]
    assert resp.headers["content-type"].startswith("application/x-votable+xml")
    status, message = status_of(resp.content)
    assert status == "ERROR"
    assert message.startswith("UsageError: ") and f" {name}:" in f" {message[12:]}", message


def test_open_intervals_and_big_circles(http: httpx.Client, data_dir) -> None:
    """Values DALI allows at the edges: infinities, whole-sky ranges, circles past 90 degrees."""
    public = public_count(data_dir)
    assert status_of(http.get("/sia/query", params={"MAXREC": "0"}).content)[0] == "OVERFLOW"
    for params in ({"POS": "RANGE -Inf +Inf -Inf +Inf"}, {"POS": "RANGE 0 360 -2 2", "POSSYS": "GALACTIC"},
                   {"POS": "CIRCLE 0 0 120", "POSSYS": "GALACTIC"}, {"POS": "CIRCLE 0 0 180"},
                   {"BAND": "-Inf +Inf"}, {"TIME": "0 100000"}, {"POS": "", "BAND": " "}):
        resp = http.get("/sia/query", params=params)
        assert resp.status_code == 200, (params, resp.text[:300])
        assert resp.content.count(b"<TR>") == public, params
    for params in ({"POS": "CIRCLE 180 0 60", "POSSYS": "GALACTIC"}, {"POL": "I"}, {"TIME": "0 1"}):
        resp = http.get("/sia/query", params=params)
        assert resp.status_code == 200 and resp.content.count(b"<TR>") == 0, params
