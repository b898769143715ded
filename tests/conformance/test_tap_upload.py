"""TAP UPLOAD against the real server: pyvo sync and async, a cross-match checked with numpy,
temporary tables that leave nothing behind, and bad input as DALI errors (a second server
runs with small limits for the 413 cases)."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator

import httpx
import numpy as np
import psycopg
import pytest
import pyvo
from astropy.io import votable
from astropy.table import Table
from lxml import etree

from app.params import FORM_SLACK
from app.settings import Settings
from tests.conftest import Database, Server, running_server

pytestmark = pytest.mark.timeout(120)

ARCSEC = 1 / 3600


def vot(table: Table, fmt: str = "tabledata", xtypes: dict[str, str] | None = None) -> bytes:
    doc = votable.from_table(table)
    t = doc.get_first_table()
    for f in t.fields:
        if xtypes and f.name in xtypes:
            f.xtype = xtypes[f.name]
    t.format = fmt
    out = io.BytesIO()
    doc.to_xml(out)
    return out.getvalue()


def status_of(body: bytes) -> tuple[str, str]:
    infos = etree.fromstring(body).findall(".//{*}INFO[@name='QUERY_STATUS']")
    assert infos, body[:500]
    return infos[-1].get("value"), (infos[-1].text or "")


def read_result(body: bytes) -> Table:
    return votable.parse_single_table(io.BytesIO(body)).to_table()


def leftover_upload_tables(conn: psycopg.Connection) -> int:
    """Upload tables alive in any session of the cluster (pg_class lists every session's temp tables)."""
    return conn.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'tap\\_upload\\_%'").fetchone()[0]


# -- the cross-match ---------------------------------------------------------------------------


def targets(conn: psycopg.Connection) -> Table:
    """40 positions: 30 near catalogue sources (within 2 arcsec), 10 at random places."""
    rng = np.random.default_rng(5)
    rows = conn.execute("SELECT ra, dec FROM compactsources.band70um ORDER BY designation").fetchall()
    picks = np.array(rows)[rng.choice(len(rows), 30, replace=False)]
    ra = np.concatenate([picks[:, 0] + rng.uniform(-1.4, 1.4, 30) * ARCSEC, rng.uniform(264.8, 268.1, 10)])
    dec = np.concatenate([picks[:, 1] + rng.uniform(-1.4, 1.4, 30) * ARCSEC, rng.uniform(-30.6, -27.3, 10)])
    t = Table({"uid": np.arange(40, dtype=np.int32), "ra": ra, "dec": dec, "pos": np.column_stack([ra, dec])})
    t["ra"].unit = t["dec"].unit = "deg"
    t["ra"].meta["ucd"] = "pos.eq.ra"
    return t


def expected_pairs(conn: psycopg.Connection, t: Table, radius_deg: float) -> set[tuple[int, str]]:
    """The matches computed independently: numpy great-circle distances of every pair."""
    rows = conn.execute("SELECT designation, ra, dec FROM compactsources.band70um").fetchall()
    names = np.array([r[0] for r in rows])
    ra2, dec2 = np.radians([r[1] for r in rows]), np.radians([r[2] for r in rows])
    pairs = set()
    for uid, ra, dec in zip(t["uid"], np.radians(t["ra"]), np.radians(t["dec"]), strict=True):
        cosd = np.sin(dec) * np.sin(dec2) + np.cos(dec) * np.cos(dec2) * np.cos(ra - ra2)
        dist = np.degrees(np.arccos(np.clip(cosd, -1, 1)))
        near_edge = np.abs(dist - radius_deg) < 0.01 * ARCSEC
        assert not near_edge.any(), "a pair sits on the radius: pick another seed"
        pairs |= {(int(uid), str(n)) for n in names[dist <= radius_deg]}
    return pairs


XMATCH_QUERIES = {
    "contains": (
        "SELECT u.uid, s.designation FROM TAP_UPLOAD.targets AS u JOIN compactsources.band70um AS s "
        "ON 1 = CONTAINS(POINT('ICRS', s.ra, s.dec), CIRCLE('ICRS', u.ra, u.dec, 5.0/3600))"
    ),
    "distance": (
        "SELECT u.uid, s.designation FROM compactsources.band70um AS s, TAP_UPLOAD.targets AS u "
        "WHERE DISTANCE(POINT(u.ra, u.dec), POINT(s.ra, s.dec)) < 5.0/3600"
    ),
    "point column": (  # the uploaded DALI point column as the centre
        "SELECT u.uid, s.designation FROM TAP_UPLOAD.targets AS u JOIN compactsources.band70um AS s "
        "ON 1 = CONTAINS(POINT('ICRS', s.ra, s.dec), CIRCLE(u.pos, 5.0/3600))"
    ),
}


@pytest.mark.parametrize("name", list(XMATCH_QUERIES))
def test_pyvo_sync_cross_match_matches_numpy(server: Server, conn, name: str) -> None:
    t = targets(conn)
    expected = expected_pairs(conn, t, 5 * ARCSEC)
    assert len({uid for uid, _ in expected}) >= 30  # every planted target is found
    svc = pyvo.dal.TAPService(server.url + "/tap")
    # a VOTable written here, since an astropy Table cannot say that pos is a DALI point
    upload = io.BytesIO(vot(t, "binary2", xtypes={"pos": "point"}))
    result = svc.run_sync(XMATCH_QUERIES[name], uploads={"targets": upload}).to_table()
    assert {(int(u), str(d)) for u, d in zip(result["uid"], result["designation"], strict=True)} == expected
    assert leftover_upload_tables(conn) == 0


def test_pyvo_async_upload(server: Server, conn) -> None:
    t = targets(conn)
    svc = pyvo.dal.TAPService(server.url + "/tap")
    result = svc.run_async(XMATCH_QUERIES["point column"],
                           uploads={"targets": io.BytesIO(vot(t, xtypes={"pos": "point"}))}).to_table()
    expected = expected_pairs(conn, t, 5 * ARCSEC)
    assert {(int(u), str(d)) for u, d in zip(result["uid"], result["designation"], strict=True)} == expected


def test_async_upload_kept_with_the_job_and_removed_with_it(server: Server, database: Database) -> None:
    t = Table({"a": np.arange(7, dtype=np.int32)})
    svc = pyvo.dal.TAPService(server.url + "/tap")
    job = svc.submit_job("SELECT SUM(a) AS s FROM TAP_UPLOAD.t1", uploads={"t1": t})
    job_id = job.url.rstrip("/").rsplit("/", 1)[1]
    kept = list((database.home / "results" / job_id).glob("upload-*"))
    assert len(kept) == 1
    job.run()
    job.wait(phases=["COMPLETED", "ERROR", "ABORTED"], timeout=30)
    assert job.phase == "COMPLETED", job.phase
    assert int(job.fetch_result().to_table()["s"][0]) == 21
    job.delete()
    assert not (database.home / "results" / job_id).exists()


def test_upload_added_to_a_pending_job(http: httpx.Client) -> None:
    """POST to /parameters (UWS 1.1 section 2.2.3.6) may bring the table too."""
    r = http.post("/tap/async", data={"LANG": "ADQL", "QUERY": "SELECT MAX(a) AS m FROM TAP_UPLOAD.late"})
    job = r.headers["location"]
    files = {"p": ("t.xml", vot(Table({"a": np.array([4, 9], dtype=np.int32)})))}
    assert http.post(job + "/parameters", data={"UPLOAD": "late,param:p"}, files=files).status_code == 303
    assert http.post(job + "/phase", data={"PHASE": "RUN"}).status_code == 303
    deadline = time.monotonic() + 30
    while http.get(job + "/phase").text != "COMPLETED" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert int(read_result(http.get(job + "/results/result").content)["m"][0]) == 9
    http.delete(job)


def test_several_uploads_joined_with_metadata(http: httpx.Client) -> None:
    left = Table({"k": np.array([1, 2, 3], dtype=np.int32), "flux": [1.5, 2.5, 3.5]})
    left["flux"].unit = "mJy"
    left["flux"].description = "peak flux"
    right = Table({"k": np.array([2, 3, 4], dtype=np.int32), "label": ["two", "three", "four"]})
    files = {"p1": ("l.xml", vot(left, "binary2")), "p2": ("r.xml", vot(right, "tabledata"))}
    query = ("SELECT l.k, l.flux, r.label FROM TAP_UPLOAD.lft AS l JOIN TAP_UPLOAD.\"Right\" AS r ON l.k = r.k "
             "ORDER BY l.k")
    resp = http.post("/tap/sync", data={"LANG": "ADQL", "QUERY": query, "UPLOAD": 'lft,param:p1;"Right",param:p2'},
                     files=files)
    assert resp.status_code == 200, resp.text[:500]
    result = read_result(resp.content)
    assert list(result["k"]) == [2, 3] and list(result["label"]) == ["two", "three"]
    assert str(result["flux"].unit) == "mJy" and result["flux"].description == "peak flux"


def test_upload_tables_are_per_query(http: httpx.Client) -> None:
    query = {"LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.once"}
    files = {"p": ("t.xml", vot(Table({"a": [1]})))}
    assert http.post("/tap/sync", data={**query, "UPLOAD": "once,param:p"}, files=files).status_code == 200
    resp = http.post("/tap/sync", data=query)
    assert resp.status_code == 400 and "does not exist" in status_of(resp.content)[1]


def test_failed_load_leaves_the_pool_clean(http: httpx.Client, conn) -> None:
    bad = vot(Table({"when": ["not a time"]}), xtypes={"when": "timestamp"})
    for _ in range(12):  # more than the pool holds: every connection served a failed load
        resp = http.post("/tap/sync", data={"LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.t",
                                            "UPLOAD": "t,param:p"}, files={"p": ("t.xml", bad)})
        assert resp.status_code == 400
        assert "UPLOAD TAP_UPLOAD.t" in status_of(resp.content)[1]
    ok = http.post("/tap/sync", data={"LANG": "ADQL", "QUERY": "SELECT COUNT(*) AS n FROM TAP_UPLOAD.t",
                                      "UPLOAD": "t,param:p"}, files={"p": ("t.xml", vot(Table({"a": [1, 2]})))})
    assert ok.status_code == 200 and int(read_result(ok.content)["n"][0]) == 2
    assert leftover_upload_tables(conn) == 0


# -- bad input ---------------------------------------------------------------------------------

GOOD = vot(Table({"a": np.arange(3, dtype=np.int32)}))
#: a one-column VOTable: the FIELD's attributes, then the TABLEDATA cells of one row
VOT_FIELD = ('<?xml version="1.0"?><VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE>'
             '<TABLE><FIELD name="a" {}/><DATA><TABLEDATA><TR><TD>{}</TD></TR></TABLEDATA></DATA></TABLE>'
             "</RESOURCE></VOTABLE>")

BAD_UPLOADS = [
    # (UPLOAD value, files, status, text the error carries)
    # uploads by URL: tests/conformance/test_tap_upload_url.py
    ("t,ftp://example.org/t.xml", {}, 400, "other URI schemes are not fetched"),
    ("t,param:missing", {"p": GOOD}, 400, "no part named 'missing'"),
    ("t,param:p", {"p": b"this is not XML"}, 400, "not a VOTable"),
    ("t,param:p", {"p": b"<VOTABLE><RESOURCE><TABLE>"}, 400, "not a readable VOTable"),
    ("t,param:p", {"p": b'<!DOCTYPE x [<!ENTITY e "e">]><VOTABLE/>'}, 400, "DOCTYPE"),
    ("t,param:p", {"p": vot(Table({"p": [[0.0, 95.0]]}), xtypes={"p": "point"})}, 400, "within [-90, 90]"),
    ("t,param:p", {"p": vot(Table({"a": np.array([[1.0, 2.0, 3.0]])}))}, 400, "arrays"),
    ("t,param:p", {"p": vot(Table({"when": ["not a time"]}), xtypes={"when": "timestamp"})}, 400,
     "UPLOAD TAP_UPLOAD.t"),
    ("1t,param:p", {"p": GOOD}, 400, "not a valid table name"),
    ("select,param:p", {"p": GOOD}, 400, "reserved word"),
    ("t,param:p;T,param:p", {"p": GOOD}, 400, "uploaded twice"),
    # arraysize 0 is no VOTable arraysize (VOTable 1.4 section 2.2): refused, sync and at job creation
    ("t,param:p", {"p": VOT_FIELD.format('datatype="char" arraysize="0"', "").encode()}, 400,
     "arraysize '0' is not valid"),
    ("t,param:p", {"p": VOT_FIELD.format('datatype="double" arraysize="0"', "").encode()}, 400,
     "arraysize '0' is not valid"),
]


@pytest.mark.parametrize("upload, files, status, text", BAD_UPLOADS)
@pytest.mark.parametrize("endpoint", ["/tap/sync", "/tap/async"])
def test_bad_uploads_are_dali_errors(http: httpx.Client, endpoint: str, upload: str, files: dict, status: int,
                                     text: str) -> None:
    data = {"LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.t", "UPLOAD": upload, "PHASE": "RUN"}
    parts = {name: (f"{name}.xml", body) for name, body in files.items()} or None
    resp = http.post(endpoint, data=data, files=parts)
    if endpoint == "/tap/async" and text == "UPLOAD TAP_UPLOAD.t":
        # the value is refused by PostgreSQL, so only when the job runs
        assert resp.status_code == 303
        job = resp.headers["location"]
        deadline = time.monotonic() + 30
        while http.get(job + "/phase").text not in ("ERROR", "COMPLETED") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert http.get(job + "/phase").text == "ERROR"
        assert text in status_of(http.get(job + "/error").content)[1]
        return
    assert resp.status_code == status, resp.text[:500]
    assert resp.headers["content-type"].startswith("application/x-votable+xml")
    value, message = status_of(resp.content)
    assert value == "ERROR" and text in message, message


# -- limits: a second server with small ones ---------------------------------------------------

MAX_ROWS = 50
MAX_BYTES = 20_000


@pytest.fixture(scope="module")
def small_server(database) -> Iterator[str]:
    """``vlkb serve`` on the same database with VLKB_UPLOAD_MAX_ROWS=50, VLKB_UPLOAD_MAX_BYTES=20000."""
    with running_server(database, upload_max_rows=str(MAX_ROWS), upload_max_bytes=str(MAX_BYTES)) as srv:
        yield srv.url


def _rows(n: int) -> bytes:
    return vot(Table({"a": np.arange(n, dtype=np.int32)}), "binary2")


def _post_upload(base: str, endpoint: str, body: bytes, *, chunked: bool = False) -> httpx.Response:
    data = {"LANG": "ADQL", "QUERY": "SELECT COUNT(*) AS n FROM TAP_UPLOAD.t", "UPLOAD": "t,param:p"}
    request = httpx.Request("POST", base + endpoint, data=data, files={"p": ("t.xml", body)})
    with httpx.Client(timeout=30) as client:
        if not chunked:
            return client.send(request)
        content = request.read()
        headers = {"content-type": request.headers["content-type"]}
        pieces = (content[i:i + 8192] for i in range(0, len(content), 8192))
        return client.post(base + endpoint, content=pieces, headers=headers)


@pytest.mark.parametrize("endpoint", ["/tap/sync", "/tap/async"])
def test_row_limit(small_server: str, endpoint: str) -> None:
    ok = _post_upload(small_server, endpoint, _rows(MAX_ROWS))
    assert ok.status_code in (200, 303), ok.text[:300]
    resp = _post_upload(small_server, endpoint, _rows(MAX_ROWS + 1))
    assert resp.status_code == 413
    value, message = status_of(resp.content)
    assert value == "ERROR" and "too many rows (51)" in message


def test_byte_limit_of_the_tables(small_server: str) -> None:
    body = vot(Table({"s": ["x" * 100] * 30}))  # under the row limit
    for endpoint in ("/tap/sync", "/tap/async"):
        resp = _post_upload(small_server, endpoint, body + b" " * MAX_BYTES)
        assert resp.status_code == 413
        value, message = status_of(resp.content)
        assert value == "ERROR" and f"{len(body) + MAX_BYTES} bytes uploaded" in message, message


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("endpoint", ["/tap/sync", "/tap/async"])
def test_byte_limit_of_the_body(small_server: str, endpoint: str, chunked: bool) -> None:
    """A body beyond the tables' limit and the room for other fields is refused while reading it."""
    body = _rows(3) + b" " * (MAX_BYTES + FORM_SLACK)
    resp = _post_upload(small_server, endpoint, body, chunked=chunked)
    assert resp.status_code == 413
    value, message = status_of(resp.content)
    assert value == "ERROR" and "request body is larger than this service accepts" in message, message


UPLOAD_METHODS = [f"ivo://ivoa.net/std/TAPRegExt#upload-{m}" for m in ("inline", "http", "https")]


def test_uploads_declared_in_capabilities(http: httpx.Client) -> None:
    svc_caps = etree.fromstring(http.get("/tap/capabilities").content)
    methods = [m.get("ivo-id") for m in svc_caps.iter("uploadMethod")]
    assert methods == UPLOAD_METHODS
    limit = next(svc_caps.iter("uploadLimit"))
    assert limit.find("hard").get("unit") == "byte" and int(limit.find("hard").text) > 0
    assert limit.find("default").get("unit") == "row" and int(limit.find("default").text) > 0


def test_upload_limit_seen_by_pyvo(server: Server, small_server: str) -> None:
    for url, limit in ((server.url, Settings.model_fields["upload_max_bytes"].default), (small_server, MAX_BYTES)):
        svc = pyvo.dal.TAPService(url + "/tap")
        assert [m.ivo_id for m in svc.upload_methods] == UPLOAD_METHODS
        hard = svc.get_tap_capability().uploadlimit.hard
        assert (hard.unit, hard.content) == ("byte", limit)


@pytest.mark.parametrize("field, cell", [('datatype="double" arraysize="1"', "2.5"),
                                         ('datatype="int" arraysize="1"', "7")])
@pytest.mark.parametrize("endpoint", ["/tap/sync", "/tap/async"])
def test_arraysize_one_is_a_scalar(http: httpx.Client, endpoint: str, field: str, cell: str) -> None:
    data = {"LANG": "ADQL", "QUERY": "SELECT a FROM TAP_UPLOAD.t", "UPLOAD": "t,param:p", "PHASE": "RUN"}
    resp = http.post(endpoint, data=data, files={"p": ("t.xml", VOT_FIELD.format(field, cell).encode())})
    if endpoint == "/tap/async":
        assert resp.status_code == 303, resp.text[:500]
        job = resp.headers["location"]
        deadline = time.monotonic() + 30
        while http.get(job + "/phase").text not in ("ERROR", "COMPLETED") and time.monotonic() < deadline:
            time.sleep(0.1)
        resp = http.get(job + "/results/result")
        http.delete(job)
    assert resp.status_code == 200, resp.text[:500]
    assert float(read_result(resp.content)["a"][0]) == float(cell)


def _wide(columns: int) -> bytes:
    """A one-row VOTable of ``columns`` int columns, written directly (astropy is slow to write it)."""
    fields = "".join(f'<FIELD name="c{i}" datatype="int"/>' for i in range(columns))
    cells = "<TD>1</TD>" * columns
    return ('<?xml version="1.0"?><VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE>'
            f"<TABLE>{fields}<DATA><TABLEDATA><TR>{cells}</TR></TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>"
            ).encode()


@pytest.mark.parametrize("endpoint", ["/tap/sync", "/tap/async"])
def test_wide_upload_refused_while_the_service_answers(server: Server, endpoint: str) -> None:
    """20,000 columns (once ~100 s of frozen event loop) are refused before parsing; /health answers
    meanwhile (margin: 30 s per /health, and no bound on the refusal but that it completes)."""
    body = _wide(20_000)
    result: dict[str, httpx.Response] = {}

    def post() -> None:
        result["r"] = httpx.post(server.url + endpoint, data={
            "LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.t", "UPLOAD": "t,param:p",
        }, files={"p": ("t.xml", body)}, timeout=120)

    worker = threading.Thread(target=post)
    worker.start()
    try:
        while worker.is_alive():
            assert httpx.get(server.url + "/health", timeout=30).status_code == 200
            time.sleep(0.1)
    finally:
        worker.join()
    resp = result["r"]
    assert resp.status_code == 413, resp.text[:300]
    value, message = status_of(resp.content)
    assert value == "ERROR" and "more than 1000 columns" in message, message
    # the widest table allowed still works, with every column in the result
    ok = httpx.post(server.url + "/tap/sync", data={"LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.t",
                                                    "UPLOAD": "t,param:p"}, files={"p": ("t.xml", _wide(1000))},
                    timeout=120)
    assert ok.status_code == 200, ok.text[:300]
    assert len(read_result(ok.content).columns) == 1000


@pytest.mark.parametrize("fmt", ["votable", "votable/b", "votable/td"])
def test_char_columns_keep_their_datatype(http: httpx.Client, fmt: str) -> None:
    """An uploaded char column comes back as char while its values are ASCII (taplint W-UPL-TMDA),
    fixed sizes kept; non-ASCII char text (which VOTable 1.4 forbids, and astropy reads) becomes
    unicodeChar rather than losing characters."""
    names = ["alpha", "b", "", "gamma ray"]
    rows = "".join(f"<TR><TD>{k}</TD><TD>{n}</TD><TD>{c}</TD><TD>{o}</TD></TR>" for k, n, c, o in
                   zip(range(4), names, ["ab", "cd", "ef", "gh"], ["café", "x", "y", "z"], strict=True))
    body = ('<?xml version="1.0" encoding="utf-8"?><VOTABLE version="1.4" '
            'xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE><TABLE><FIELD name="k" datatype="int"/>'
            '<FIELD name="name" datatype="char" arraysize="*"/><FIELD name="code" datatype="char" arraysize="2"/>'
            '<FIELD name="odd" datatype="char" arraysize="*"/>'
            f"<DATA><TABLEDATA>{rows}</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>").encode()
    resp = http.post("/tap/sync", data={"LANG": "ADQL", "QUERY": "SELECT k, name, code, odd, UPPER(name) AS up "
                                        "FROM TAP_UPLOAD.t ORDER BY k", "UPLOAD": "t,param:p",
                                        "RESPONSEFORMAT": fmt}, files={"p": ("t.xml", body)})
    assert resp.status_code == 200, resp.text[:500]
    table = votable.parse_single_table(io.BytesIO(resp.content))
    types = {f.name: (f.datatype, f.arraysize) for f in table.fields}
    assert types["name"] == ("char", "*") and types["code"] == ("char", "2")
    assert types["odd"][0] == "unicodeChar" and types["up"][0] == "unicodeChar"
    got = table.to_table()
    assert [str(v) for v in got["name"].filled("")] == names
    assert list(got["code"]) == ["ab", "cd", "ef", "gh"]
    assert str(got["odd"][0]) == "café" and [str(v) for v in got["up"].filled("")] == [n.upper() for n in names]
