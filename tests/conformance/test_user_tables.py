"""Persistent user tables (issue 17 part 2) over a real server, a real OIDC issuer and pyvo.

Callers: the owner (``ut-owner``), a member of the group the table is shared with (``ut-member``
in ``ut-share``), an outsider (``ut-outsider``) and anonymous. Expected values are the rows the
tests send and, for joins, separations computed with numpy from the band table read as the
database owner; never the service's own earlier output.
"""

from __future__ import annotations

import io
import re
import tempfile
from pathlib import Path
from xml.etree import ElementTree

import httpx
import numpy as np
import psycopg
import pytest
import pyvo
import requests
from astropy.table import Table

from db.ddl import QUERY_ROLE
from db.session import setup_statement
from schemas import Table as Decl
from tests.conftest import running_server
from tests.oidc_issuer import TestIssuer
from vo.tap import TapQuery, plan_query

# pyvo's client of this API (CADC's YouCat shape) is a prototype feature it asks to be turned on
pyvo.utils.activate_features("cadc-tb-upload")

OWNER, MEMBER, OUTSIDER, QUOTA = "ut-owner", "ut-member", "ut-outsider", "ut-quota"
SHARE = "ut-share"



def token(issuer: TestIssuer, who: str) -> dict[str, str]:
    groups = {OWNER: ["ut-own"], MEMBER: [SHARE], OUTSIDER: ["other"], QUOTA: []}
    if who == "anonymous":
        return {}
    return {"Authorization": f"Bearer {issuer.token(who, groups[who])}"}


@pytest.fixture(scope="module")
def schema() -> str:
    from vo.usertables import schema_of

    return schema_of(OWNER)


def votable_bytes(t: Table) -> bytes:
    out = io.BytesIO()
    t.write(out, format="votable")
    return out.getvalue()


def parquet_bytes(t: Table) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.parquet"
        t.write(path, format="parquet")
        return path.read_bytes()


def csv_bytes(t: Table) -> bytes:
    out = io.StringIO()
    t.write(out, format="ascii.csv")
    return out.getvalue().encode()


def put(server, issuer, who: str, name: str, body: bytes, ctype: str, **params: str) -> httpx.Response:
    return httpx.put(f"{server.url}/tap/tables/{name}", content=body, params=params,
                     headers={**token(issuer, who), "Content-Type": ctype}, timeout=120)


def delete(server, issuer, who: str, name: str) -> httpx.Response:
    return httpx.delete(f"{server.url}/tap/tables/{name}", headers=token(issuer, who), timeout=60)


def tap(server, issuer, who: str, query: str) -> httpx.Response:
    return httpx.post(server.url + "/tap/sync", data={"LANG": "ADQL", "QUERY": query, "FORMAT": "csv"},
                      headers=token(issuer, who), timeout=120)


def table_update(server, issuer, who: str, **params: str) -> tuple[str, str]:
    """Run a ``table-update`` job (created with PHASE=RUN) to its end: its phase and error text."""
    h = token(issuer, who)
    resp = httpx.post(f"{server.url}/tap/table-update", data={**params, "PHASE": "RUN"}, headers=h, timeout=60)
    assert resp.status_code == 303, resp.text[:300]
    job = resp.headers["location"]
    phase = ""
    for _ in range(60):  # generous: the machine is shared
        phase = httpx.get(job + "/phase", headers=h, timeout=60).text
        if phase not in ("PENDING", "QUEUED", "EXECUTING"):
            break
        httpx.get(job, params={"WAIT": "5"}, headers=h, timeout=60)
    return phase, httpx.get(job + "/error", headers=h, timeout=60).text if phase == "ERROR" else ""


def rows(resp: httpx.Response) -> list[list[str]]:
    assert resp.status_code == 200, resp.text[:400]
    return [line.split(",") for line in resp.text.strip().splitlines()[1:]]


def dali_message(resp: httpx.Response) -> str:
    assert resp.headers["content-type"].startswith("application/x-votable+xml"), resp.text[:300]
    root = ElementTree.fromstring(resp.content)
    infos = [i for i in root.iter() if i.tag.endswith("INFO") and i.get("name") == "QUERY_STATUS"]
    assert infos and infos[-1].get("value") == "ERROR"
    return infos[-1].text or ""


def sample(n: int = 5, seed: int = 1) -> Table:
    rng = np.random.default_rng(seed)
    return Table({
        "name": [f"src{i}" for i in range(n)],
        "ra": rng.uniform(260, 270, n),
        "dec": rng.uniform(-30, -25, n),
        "flux": rng.uniform(0, 10, n),
        "n_obs": rng.integers(0, 100, n),
    })


@pytest.fixture(scope="module")
def clean(auth_server, issuer, schema):
    """Drops what the tests leave (other tests compare TAP_SCHEMA across callers)."""
    made: list[str] = []
    yield made
    for name in made:
        delete(auth_server, issuer, OWNER, name)


@pytest.mark.parametrize("fmt", ["votable", "csv", "parquet"])
def test_create_from_each_format_then_query_with_pyvo(auth_server, issuer, schema, clean, fmt) -> None:
    t = sample(7, seed=len(fmt))
    t["ra"].unit = "deg"
    t["dec"].unit = "deg"
    write, ctype = {"votable": (votable_bytes, "application/x-votable+xml"), "csv": (csv_bytes, "text/csv"),
                    "parquet": (parquet_bytes, "application/vnd.apache.parquet")}[fmt]
    body = write(t)
    name = f"{schema}.from_{fmt}"
    clean.append(name)
    resp = put(auth_server, issuer, OWNER, name, body, ctype)
    assert resp.status_code == 201, resp.text[:500]
    assert resp.headers["location"].endswith(f"/tap/tables/{name}")
    # the VOSI description names every column, with the units the file declared
    cols = {c.findtext("name"): c.findtext("unit") for c in ElementTree.fromstring(resp.content).iter("column")}
    assert set(cols) == set(t.colnames)
    if fmt != "csv":
        assert cols["ra"] == "deg"
    # pyvo, as the owner, reads back exactly what was sent
    session = requests.Session()
    session.headers.update(token(issuer, OWNER))
    service = pyvo.dal.TAPService(auth_server.url + "/tap", session=session)
    got = service.search(f"SELECT name, ra, dec, flux, n_obs FROM {name} ORDER BY name").to_table()
    assert list(got["name"]) == list(t["name"])
    np.testing.assert_array_equal(np.asarray(got["ra"], dtype=float), np.asarray(t["ra"]))
    np.testing.assert_array_equal(np.asarray(got["flux"], dtype=float), np.asarray(t["flux"]))
    assert list(np.asarray(got["n_obs"], dtype=int)) == list(t["n_obs"])
    # and it is listed in TAP_SCHEMA for the owner
    listed = rows(tap(auth_server, issuer, OWNER,
                      f"SELECT column_name FROM TAP_SCHEMA.columns WHERE table_name = '{name}'"))
    assert {r[0] for r in listed} == set(t.colnames)


def test_declare_columns_then_load_rows(auth_server, issuer, schema, clean) -> None:
    t = sample(1)[:0]
    name = f"{schema}.declared"
    clean.append(name)
    resp = put(auth_server, issuer, OWNER, name, votable_bytes(t), "application/x-votable+xml",
               DESCRIPTION="declared, then loaded")
    assert resp.status_code == 201, resp.text[:500]
    assert rows(tap(auth_server, issuer, OWNER, f"SELECT COUNT(*) FROM {name}")) == [["0"]]
    more = sample(12, seed=9)
    for part, ctype in ((csv_bytes(more[:5]), "text/csv"), (votable_bytes(more[5:]), "text/xml")):
        resp = httpx.post(f"{auth_server.url}/tap/load/{name}", content=part,
                          headers={**token(issuer, OWNER), "Content-Type": ctype}, timeout=60)
        assert resp.status_code == 200, resp.text[:500]
    got = rows(tap(auth_server, issuer, OWNER, f"SELECT name, n_obs FROM {name} ORDER BY name"))
    assert got == sorted([[str(a), str(b)] for a, b in zip(more["name"], more["n_obs"], strict=True)])
    desc = httpx.get(f"{auth_server.url}/tap/tables/{name}", headers=token(issuer, OWNER))
    assert desc.status_code == 200 and "declared, then loaded" in desc.text


def test_bad_rows_are_reported_and_nothing_is_written(auth_server, issuer, schema, clean, database) -> None:
    name = f"{schema}.badrows"
    # a declination out of range (dec is read as pos.eq.dec): refused, and no table is made
    resp = put(auth_server, issuer, OWNER, name, b"name,ra,dec\na,10.0,5.0\nc,11.0,95.0\n", "text/csv")
    assert resp.status_code == 400
    message = dali_message(resp)
    assert "line 3" in message and "95" in message and "out of range" in message, message
    with psycopg.connect(database.url) as c:
        assert c.execute("SELECT count(*) FROM vlkb.user_tables WHERE table_name = 'badrows'").fetchone()[0] == 0
        assert c.execute("SELECT to_regclass(%s)", (name,)).fetchone()[0] is None
    # rows appended to declared columns are checked against their types: one bad row, none written
    clean.append(name)
    assert put(auth_server, issuer, OWNER, name, b"name,ra,dec\na,10.0,5.0\n", "text/csv").status_code == 201
    resp = httpx.post(f"{auth_server.url}/tap/load/{name}", content=b"name,ra,dec\nb,11.0,6.0\nc,ten,5.0\n",
                      headers={**token(issuer, OWNER), "Content-Type": "text/csv"})
    assert resp.status_code == 400
    message = dali_message(resp)
    assert "line 3" in message and "'ten' is not a number" in message, message
    assert rows(tap(auth_server, issuer, OWNER, f"SELECT name FROM {name}")) == [["a"]]


@pytest.fixture(scope="module")
def band(database) -> tuple[np.ndarray, np.ndarray, list[str]]:
    with psycopg.connect(database.url) as c:
        got = c.execute("SELECT ra, dec, designation FROM compactsources.band70um ORDER BY designation").fetchall()
    assert len(got) > 20
    return np.array([g[0] for g in got]), np.array([g[1] for g in got]), [g[2] for g in got]


def _separation(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Great-circle distance in degrees (haversine), all pairs."""
    r1, d1, r2, d2 = (np.radians(np.asarray(x, dtype=float)) for x in (ra1, dec1, ra2, dec2))
    dra = r2[None, :] - r1[:, None]
    ddec = d2[None, :] - d1[:, None]
    a = np.sin(ddec / 2) ** 2 + np.cos(d1[:, None]) * np.cos(d2[None, :]) * np.sin(dra / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(a, 0, 1))))


@pytest.fixture(scope="module")
def targets(auth_server, issuer, schema, clean, band) -> tuple[str, Table]:
    """A user table of positions near some band-table sources (and some far from all), spatially indexed."""
    ra, dec, _ = band
    rng = np.random.default_rng(5)
    pick = rng.choice(len(ra), 15, replace=False)
    near_ra = ra[pick] + rng.uniform(-1, 1, 15) / 3600
    near_dec = dec[pick] + rng.uniform(-1, 1, 15) / 3600
    t = Table({"tid": np.arange(20), "ra": np.concatenate([near_ra, rng.uniform(0, 5, 5)]),
               "dec": np.concatenate([near_dec, rng.uniform(60, 70, 5)])})
    name = f"{schema}.targets"
    clean.append(name)
    assert put(auth_server, issuer, OWNER, name, votable_bytes(t), "application/x-votable+xml").status_code == 201
    assert table_update(auth_server, issuer, OWNER, TABLE=name, INDEX="ra,dec") == ("COMPLETED", "")
    # pyvo's create_index drives the same job (303 to it, then PHASE=RUN)
    session = requests.Session()
    session.headers.update(token(issuer, OWNER))
    pyvo.dal.TAPService(auth_server.url + "/tap", session=session).create_index(name, "tid", unique=True)
    resp = httpx.get(f"{auth_server.url}/tap/tables/{name}", headers=token(issuer, OWNER), timeout=60)
    indexed = {c.findtext("name") for c in ElementTree.fromstring(resp.content).iter("column")
               if any(f.text == "indexed" for f in c.iter("flag"))}
    assert indexed == {"ra", "dec", "tid"}
    return name, t


#: a cross-match of a short list with a catalogue: the catalogue's point first, so when both points
#: are indexed the translator keeps it on the indexed side of ``<@`` (docs/user-tables.md)
JOIN = ("SELECT u.tid, b.designation FROM {name} AS u JOIN compactsources.band70um AS b "
        "ON DISTANCE(POINT('ICRS', b.ra, b.dec), POINT('ICRS', u.ra, u.dec)) < {r}")
CONE = "SELECT tid FROM {name} AS u WHERE DISTANCE(POINT('ICRS', u.ra, u.dec), POINT('ICRS', 1.0, 65.0)) < 5"


def test_join_with_the_knowledge_base(auth_server, issuer, targets, band) -> None:
    name, t = targets
    ra, dec, designation = band
    r = 3 / 3600
    sep = _separation(t["ra"], t["dec"], ra, dec)
    want = sorted((int(t["tid"][i]), designation[j]) for i, j in zip(*np.nonzero(sep < r), strict=True))
    assert len(want) >= 15
    got = sorted((int(a), b) for a, b in rows(tap(auth_server, issuer, OWNER, JOIN.format(name=name, r=r))))
    assert got == want


def _explain(database, name: str, query: str, *, seqscan: bool = True) -> str:
    """EXPLAIN of ``query`` translated as the service does, run in the owner's session (query role, RLS on)."""
    with psycopg.connect(database.url) as c:
        decl = Decl.model_validate(c.execute("SELECT decl FROM vlkb.user_tables WHERE schema_name || '.' || "
                                             "table_name = %s", (name,)).fetchone()[0])
        q = TapQuery.from_params({"LANG": ["ADQL"], "QUERY": [query]}, maxrec_default=1000, maxrec_limit=1000)
        plan, _ = plan_query(q, user_tables=[decl])
        c.execute(setup_statement(QUERY_ROLE, 60, c.info.server_version, (), user=OWNER, begin=False))
        if not seqscan:
            c.execute("SET LOCAL enable_seqscan = off")
        text = "\n".join(r[0] for r in c.execute("EXPLAIN " + plan.sql).fetchall())
        c.rollback()
    return text


def test_the_join_uses_the_gist_index_under_row_level_security(targets, database) -> None:
    name, _ = targets
    text = _explain(database, name, JOIN.format(name=name, r=3 / 3600))
    # the catalogue is read through its GiST index, once per row of the user table
    assert re.search(r"Index Cond: \(pos <@ vlkb_join_circle\(u\._pt_ra_dec", text), text
    assert "Seq Scan on band70um" not in text, text
    # the user table's own GiST index serves conditions on POINT(ra, dec) under its policy too
    # (a 20-row table is scanned whole by choice: with sequential scans off, the index must serve)
    text = _explain(database, name, CONE.format(name=name), seqscan=False)
    assert re.search(r"(Bitmap Index|Index) Scan on \S*_pt_ra_dec\S*", text) or "_pt_ra_dec_idx" in text, text


def test_share_with_a_group_member_reads_others_do_not(auth_server, issuer, targets) -> None:
    name, t = targets
    missing = f"{name.split('.')[0]}.no_such_table"
    count = f"SELECT COUNT(*) FROM {name}"
    # before sharing, only the owner sees it; everyone else gets the answer a missing table gets
    for who in (MEMBER, OUTSIDER, "anonymous"):
        resp = tap(auth_server, issuer, who, count)
        ref = tap(auth_server, issuer, who, f"SELECT COUNT(*) FROM {missing}")
        assert resp.status_code == ref.status_code == 400
        assert dali_message(resp).replace(name, "X") == dali_message(ref).replace(missing, "X")
        got = httpx.get(f"{auth_server.url}/tap/tables/{name}", headers=token(issuer, who))
        ref_vosi = httpx.get(f"{auth_server.url}/tap/tables/{missing}", headers=token(issuer, who))
        assert got.status_code == ref_vosi.status_code == 404
        assert dali_message(got).replace(name, "X") == dali_message(ref_vosi).replace(missing, "X")
    assert table_update(auth_server, issuer, OWNER, TABLE=name, READ_GROUPS=f"{SHARE},x") == ("COMPLETED", "")
    assert rows(tap(auth_server, issuer, MEMBER, count)) == [[str(len(t))]]
    for who in (OUTSIDER, "anonymous"):
        assert tap(auth_server, issuer, who, count).status_code == 400
    # TAP_SCHEMA and the VOSI tableset list it for the member only
    tq = f"SELECT table_name FROM TAP_SCHEMA.tables WHERE table_name = '{name}'"
    assert rows(tap(auth_server, issuer, MEMBER, tq)) == [[name]]
    for who in (OUTSIDER, "anonymous"):
        assert rows(tap(auth_server, issuer, who, tq)) == []
        assert name not in httpx.get(f"{auth_server.url}/tap/tables", headers=token(issuer, who)).text
        cq = f"SELECT COUNT(*) FROM TAP_SCHEMA.columns WHERE table_name = '{name}'"
        assert rows(tap(auth_server, issuer, who, cq)) == [["0"]]
    assert f"<name>{name}</name>" in httpx.get(f"{auth_server.url}/tap/tables", headers=token(issuer, MEMBER)).text
    # a member reads, but may not change or drop it
    assert delete(auth_server, issuer, MEMBER, name).status_code == 403
    resp = httpx.post(f"{auth_server.url}/tap/load/{name}", content=b"tid,ra,dec\n99,1,1\n",
                      headers={**token(issuer, MEMBER), "Content-Type": "text/csv"})
    assert resp.status_code == 403
    # unsharing takes effect at once
    # nor share it, nor index it: its job ends in ERROR, as for a table that does not exist for an outsider
    phase, error = table_update(auth_server, issuer, MEMBER, TABLE=name, READ_GROUPS=SHARE)
    assert phase == "ERROR" and "owner" in error, error
    phase, error = table_update(auth_server, issuer, OUTSIDER, TABLE=name, INDEX="tid")
    assert phase == "ERROR" and "does not exist" in error, error
    assert table_update(auth_server, issuer, OWNER, TABLE=name, READ_GROUPS="") == ("COMPLETED", "")
    assert tap(auth_server, issuer, MEMBER, count).status_code == 400


def test_writes_need_an_owner(auth_server, issuer, schema, clean) -> None:
    name = f"{schema}.writes"
    body = csv_bytes(sample(3))
    resp = put(auth_server, issuer, "anonymous", name, body, "text/csv")
    assert resp.status_code == 401 and "authenticated" in dali_message(resp)
    # someone else's schema, a published schema
    assert put(auth_server, issuer, OUTSIDER, name, body, "text/csv").status_code == 403
    resp = put(auth_server, issuer, OWNER, "compactsources.mine", body, "text/csv")
    assert resp.status_code == 403 and "published schema" in dali_message(resp)
    clean.append(name)
    assert put(auth_server, issuer, OWNER, name, body, "text/csv").status_code == 201
    again = put(auth_server, issuer, OWNER, name, body, "text/csv")
    assert again.status_code == 400 and "already exists" in dali_message(again)
    # an outsider cannot tell it exists; anonymous is asked to authenticate
    assert delete(auth_server, issuer, OUTSIDER, name).status_code == 404
    assert delete(auth_server, issuer, "anonymous", name).status_code == 401
    assert delete(auth_server, issuer, OWNER, name).status_code == 204
    assert delete(auth_server, issuer, OWNER, name).status_code == 404
    assert tap(auth_server, issuer, OWNER, f"SELECT COUNT(*) FROM {name}").status_code == 400
    assert httpx.get(f"{auth_server.url}/tap/tables/{name}", headers=token(issuer, OWNER)).status_code == 404


@pytest.mark.parametrize(("name", "status", "text"), [
    ("{schema}.select", 400, "reserved word"),
    ("{schema}.1abc", 400, "not valid"),
    ("{schema}.a-b", 400, "not valid"),
    ("nodot", 400, "schema.table"),
    ("{schema}.t.u", 400, "not valid"),
    ("TAP_SCHEMA.tables", 403, "published schema"),
    ("user_somebody_else.t", 403, "your own schema"),
    ("{schema}." + "x" * 64, 400, "at most 63"),
])
def test_bad_names_are_refused_clearly(auth_server, issuer, schema, name, status, text) -> None:
    resp = put(auth_server, issuer, OWNER, name.format(schema=schema), csv_bytes(sample(2)), "text/csv")
    assert resp.status_code == status, resp.text[:300]
    assert text in dali_message(resp)


def test_bad_bodies_are_400s(auth_server, issuer, schema) -> None:
    name = f"{schema}.bodies"
    for body, ctype in ((b"<VOTABLE", "text/xml"), (b"\x00\x01garbage", "application/vnd.apache.parquet"),
                        (b"a,b\n1,2\n", "image/png"), (b"a=1", "application/x-www-form-urlencoded")):
        resp = put(auth_server, issuer, OWNER, name, body, ctype)
        assert resp.status_code in (400, 415), (ctype, resp.text[:300])
        dali_message(resp)
    doctype = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><VOTABLE/>'
    assert put(auth_server, issuer, OWNER, name, doctype, "text/xml").status_code == 400


@pytest.fixture(scope="module")
def small_quota(database, issuer):
    with running_server(database, oidc_issuer=issuer.url, oidc_jwks_refresh="0", user_tables_max_rows="10",
                        user_tables_max_bytes="200000") as srv:
        yield srv


def test_quota_overflow_is_refused_before_anything_is_written(small_quota, issuer, database) -> None:
    """The quota counts all of a user's tables: ``ut-quota`` has none before this test."""
    from vo.usertables import schema_of

    who = QUOTA
    schema = schema_of(who)
    name = f"{schema}.quota"
    resp = put(small_quota, issuer, who, name, csv_bytes(sample(11)), "text/csv")
    assert resp.status_code == 413 and "quota of 10 rows" in dali_message(resp)
    with psycopg.connect(database.url) as c:
        assert c.execute("SELECT count(*) FROM vlkb.user_tables WHERE table_name = 'quota'").fetchone()[0] == 0
        assert c.execute("SELECT to_regclass(%s)", (name,)).fetchone()[0] is None
    try:
        assert put(small_quota, issuer, who, name, csv_bytes(sample(6)), "text/csv").status_code == 201
        resp = httpx.post(f"{small_quota.url}/tap/load/{name}", content=csv_bytes(sample(5)),
                          headers={**token(issuer, who), "Content-Type": "text/csv"})
        assert resp.status_code == 413
        assert rows(tap(small_quota, issuer, who, f"SELECT COUNT(*) FROM {name}")) == [["6"]]
        big = httpx.put(f"{small_quota.url}/tap/tables/{schema}.big", content=b"a\n" + b"1\n" * 150_000,
                        headers={**token(issuer, who), "Content-Type": "text/csv"})
        assert big.status_code == 413
    finally:
        delete(small_quota, issuer, who, name)


def test_pyvo_table_management(auth_server, issuer, schema) -> None:
    """pyvo's TAPService.create_table (a VOSI table definition), load_table (CSV, TSV, FITS),
    create_index and remove_table, against the service."""
    session = requests.Session()
    session.headers.update(token(issuer, OWNER))
    service = pyvo.dal.TAPService(auth_server.url + "/tap", session=session)
    name = f"{schema}.by_pyvo"
    definition = (
        '<vosi:table xmlns:vosi="http://www.ivoa.net/xml/VOSITables/v1.0" '
        'xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<name>{name}</name><description>made by pyvo</description>"
        '<column><name>id</name><dataType xsi:type="vs:VOTableType">long</dataType></column>'
        '<column><name>ra</name><unit>deg</unit><ucd>pos.eq.ra</ucd>'
        '<dataType xsi:type="vs:VOTableType">double</dataType></column>'
        '<column><name>dec</name><unit>deg</unit><dataType xsi:type="vs:VOTableType">double</dataType></column>'
        '<column><name>label</name><dataType xsi:type="vs:VOTableType" arraysize="*">char</dataType></column>'
        "</vosi:table>")
    service.create_table(name, io.BytesIO(definition.encode()))
    try:
        t = Table({"id": [1, 2, 3], "ra": [10.0, 20.0, 30.0], "dec": [-1.0, 0.0, 1.0], "label": ["a", "b", "c"]})
        service.load_table(name, io.BytesIO(csv_bytes(t[:1])), format="csv")
        tsv = io.StringIO()
        t[1:2].write(tsv, format="ascii.tab")
        service.load_table(name, io.BytesIO(tsv.getvalue().encode()), format="tsv")
        fits = io.BytesIO()
        t[2:].write(fits, format="fits")
        service.load_table(name, io.BytesIO(fits.getvalue()), format="FITSTable")
        service.create_index(name, "ra,dec")
        got = service.search(f"SELECT id, label FROM {name} ORDER BY id").to_table()
        assert list(got["id"]) == [1, 2, 3] and [str(v) for v in got["label"]] == ["a", "b", "c"]
        cone = service.search(f"SELECT id FROM {name} WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), "
                              "CIRCLE('ICRS', 20, 0, 0.5))").to_table()
        assert list(cone["id"]) == [2]
        assert "made by pyvo" in httpx.get(f"{auth_server.url}/tap/tables/{name}", headers=token(issuer, OWNER)).text
    finally:
        service.remove_table(name)
    assert httpx.get(f"{auth_server.url}/tap/tables/{name}", headers=token(issuer, OWNER)).status_code == 404


def test_async_tap_jobs_read_user_tables_for_their_owner(auth_server, issuer, targets) -> None:
    name, t = targets
    session = requests.Session()
    session.headers.update(token(issuer, OWNER))
    service = pyvo.dal.TAPService(auth_server.url + "/tap", session=session)
    got = service.run_async(f"SELECT COUNT(*) AS n FROM {name}").to_table()
    assert int(got["n"][0]) == len(t)


def test_create_from_a_query(auth_server, issuer, schema, clean, database) -> None:
    """``PUT ...?QUERY=`` makes a table of an ADQL result (run for the caller, under the survey policies)."""
    name = f"{schema}.from_query"
    query = "SELECT TOP 10 designation, ra, dec, flux FROM compactsources.band70um ORDER BY designation"
    clean.append(name)
    resp = httpx.put(f"{auth_server.url}/tap/tables/{name}", params={"QUERY": query}, headers=token(issuer, OWNER),
                     timeout=120)
    assert resp.status_code == 201, resp.text[:400]
    units = {c.findtext("name"): c.findtext("unit") for c in ElementTree.fromstring(resp.content).iter("column")}
    with psycopg.connect(database.url) as c:
        want = c.execute("SELECT designation, flux FROM compactsources.band70um ORDER BY designation LIMIT 10"
                         ).fetchall()
    assert units["ra"] == "deg"
    got = rows(tap(auth_server, issuer, OWNER, f"SELECT designation, flux FROM {name} ORDER BY designation"))
    assert [g[0] for g in got] == [w[0] for w in want]
    assert [float(g[1]) for g in got] == [float(w[1]) for w in want]
    # a result cut short by MAXREC makes no table
    short = httpx.put(f"{auth_server.url}/tap/tables/{schema}.cut", params={"QUERY": query, "MAXREC": "3"},
                      headers=token(issuer, OWNER), timeout=120)
    assert short.status_code == 400 and "cut short" in dali_message(short)
    assert httpx.get(f"{auth_server.url}/tap/tables/{schema}.cut", headers=token(issuer, OWNER)).status_code == 404
