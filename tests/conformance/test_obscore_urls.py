"""URLs are made when answering, from the public base URL, not stored at ingest (issue 15 item 5).

Two servers with different ``VLKB_BASE_URL`` over the same database (no re-ingest between them)
must give ``access_url`` / ``preview`` values starting with their own base in TAP (sync, async,
and the ViaLactea client's TAP base), SIA, DataLink and the ViaLactea SIA answer. The expected
URLs are built here from the DIDs (read with plain SQL) and the DataLink URL conventions, not
from the service's own helpers. A row written the old way (an absolute URL with an old host) is
rewritten by migration 0004 and then answered with each server's base too.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from urllib.parse import quote, urlsplit

import httpx
import psycopg
import pytest
from astropy.io.votable import parse_single_table

from db.migrate import migrate
from schemas import find_table
from tests.conftest import Database, Server, running_server
from tests.vialactea.client import parse_search

pytestmark = pytest.mark.timeout(300)

ALPHA = "http://alpha.example:8080/vo"
BETA = "https://beta.example"
REGION = {"POS": "CIRCLE 0.5 0.2 0.5", "POSSYS": "GALACTIC"}


def links(base: str, did: str) -> str:
    return f"{base}/datalink/links?ID={quote(did, safe='')}"


def preview(base: str, did: str) -> str:
    return f"{base}/datalink/preview/{quote(did.split('?', 1)[1], safe='/')}"


@pytest.fixture(scope="module")
def servers(database: Database) -> Iterator[dict[str, Server]]:
    with running_server(database, base_url=ALPHA) as alpha, running_server(database, base_url=BETA + "/") as beta:
        yield {ALPHA: alpha, BETA: beta}


@pytest.fixture(scope="module")
def public_dids(database: Database) -> set[str]:
    """The DIDs of the public datasets (what an anonymous caller sees), by plain SQL."""
    with psycopg.connect(database.url) as conn:
        rows = conn.execute(
            "SELECT o.obs_publisher_did FROM ivoa.obscore o WHERE NOT EXISTS (SELECT 1 FROM vlkb.survey_policies p"
            " WHERE p.survey = o.obs_collection AND cardinality(p.groups) > 0)").fetchall()
    assert rows
    return {r[0] for r in rows}


def votable(content: bytes) -> list[dict[str, str]]:
    table = parse_single_table(io.BytesIO(content)).to_table()
    return [{n: str(row[n]) for n in table.colnames} for row in table]


def check_urls(rows: list[dict[str, str]], base: str, who: str) -> None:
    assert rows, who
    for row in rows:
        did = row["obs_publisher_did"]
        assert row["access_url"] == links(base, did), who
        assert row["preview"] == preview(base, did), who


def tap_sync(server: Server, query: str, path: str = "/tap/sync") -> list[dict[str, str]]:
    resp = httpx.post(server.url + path, data={"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": query}, timeout=60)
    assert resp.status_code == 200, resp.text[:500]
    return votable(resp.content)


QUERY = "SELECT obs_publisher_did, access_url, preview FROM ivoa.obscore"


@pytest.mark.parametrize("base", [ALPHA, BETA])
def test_tap_sync_urls_start_with_the_base(servers, public_dids, base) -> None:
    rows = tap_sync(servers[base], QUERY)
    assert {r["obs_publisher_did"] for r in rows} == public_dids
    check_urls(rows, base, "TAP sync")
    # the ViaLactea client's TAP base answers the same
    check_urls(tap_sync(servers[base], QUERY, "/vlkb/sync"), base, "ViaLactea TAP")


def test_where_and_order_by_see_the_absolute_urls(servers, public_dids) -> None:
    did = min(public_dids)
    for base, server in servers.items():
        rows = tap_sync(server, f"SELECT obs_publisher_did FROM ivoa.obscore WHERE access_url = '{links(base, did)}'")
        assert [r["obs_publisher_did"] for r in rows] == [did]
        other = BETA if base == ALPHA else ALPHA
        assert tap_sync(server, f"SELECT obs_publisher_did FROM ivoa.obscore WHERE access_url = '{links(other, did)}'"
                        ) == []
        rows = tap_sync(server, "SELECT TOP 3 preview FROM ivoa.obscore WHERE preview LIKE 'http%' ORDER BY preview")
        assert [r["preview"] for r in rows] == sorted(preview(base, d) for d in public_dids)[:3]


@pytest.mark.parametrize("base", [ALPHA, BETA])
def test_tap_async_urls_start_with_the_base(servers, base) -> None:
    server = servers[base]
    with httpx.Client(base_url=server.url, timeout=30) as http:
        created = http.post("/tap/async", data={"LANG": "ADQL", "QUERY": QUERY, "PHASE": "RUN"})
        assert created.status_code == 303, created.text
        location = created.headers["location"]
        assert location.startswith(base + "/tap/async/")  # the job's URL follows the base too
        job = urlsplit(location).path.rsplit("/", 1)[1]
        deadline = time.monotonic() + 60
        while (phase := http.get(f"/tap/async/{job}/phase").text) in ("PENDING", "QUEUED", "EXECUTING"):
            assert time.monotonic() < deadline, phase
            time.sleep(0.2)
        assert phase == "COMPLETED"
        check_urls(votable(http.get(f"/tap/async/{job}/results/result").content), base, "TAP async")


def test_tap_async_urls_are_those_of_the_service_the_job_was_created_through(database: Database, servers) -> None:
    """A job runs in whichever process claims it (here: never the one it was created through, whose
    executor sends its wake-ups to a broker nobody listens on, so the alpha, beta or session server
    runs it); its result's URLs are still those of the base it was created under."""
    gamma = "https://gamma.example/archive"
    with running_server(database, base_url=gamma, executor="celery", broker_url="redis://127.0.0.1:9/0") as server, \
            httpx.Client(base_url=server.url, timeout=30) as http:
        created = http.post("/tap/async", data={"LANG": "ADQL", "QUERY": QUERY, "PHASE": "RUN"})
        assert created.status_code == 303, created.text
        job = urlsplit(created.headers["location"]).path.rsplit("/", 1)[1]
        deadline = time.monotonic() + 60
        while (phase := http.get(f"/tap/async/{job}/phase").text) in ("PENDING", "QUEUED", "EXECUTING"):
            assert time.monotonic() < deadline, phase
            time.sleep(0.2)
        assert phase == "COMPLETED"
        with psycopg.connect(database.url) as conn:
            (worker,) = conn.execute("SELECT worker FROM vlkb.jobs WHERE job_id = %s", (job,)).fetchone()
        assert worker, "the job was run by some process"
        check_urls(votable(http.get(f"/tap/async/{job}/results/result").content), gamma, "TAP async elsewhere")


@pytest.mark.parametrize("base", [ALPHA, BETA])
def test_sia_urls_start_with_the_base(servers, base) -> None:
    resp = httpx.get(servers[base].url + "/sia/query", params=REGION, timeout=60)
    assert resp.status_code == 200, resp.text[:500]
    check_urls(votable(resp.content), base, "SIA")


@pytest.mark.parametrize("base", [ALPHA, BETA])
def test_vialactea_sia_urls_start_with_the_base(servers, base) -> None:
    resp = httpx.get(servers[base].url + "/vlkb/datasets/siav2/query", params=REGION, timeout=60)
    assert resp.status_code == 200, resp.text[:500]
    rows = [r.values for r in parse_search(resp.content) if r.overlap_sky]
    check_urls(rows, base, "ViaLactea SIA")


@pytest.mark.parametrize("base", [ALPHA, BETA])
def test_datalink_urls_start_with_the_base(servers, public_dids, base) -> None:
    did = min(public_dids)
    resp = httpx.get(servers[base].url + "/datalink/links", params={"ID": did}, timeout=60)
    assert resp.status_code == 200, resp.text[:500]
    rows = {r["semantics"]: r for r in votable(resp.content) if r["semantics"] in ("#this", "#preview")}
    assert rows["#this"]["access_url"] == f"{base}/datalink/files/{quote(did.split('?', 1)[1], safe='/')}"
    assert rows["#preview"]["access_url"] == preview(base, did)


def test_request_host_is_the_base_when_none_is_configured(server: Server, public_dids) -> None:
    """Without VLKB_BASE_URL the answer names the service as the client did (a trusted host)."""
    port = urlsplit(server.url).port
    for host in ("127.0.0.1", "localhost"):
        rows = tap_sync(Server(url=f"http://{host}:{port}", process=server.process, env=server.env), QUERY)
        check_urls(rows, f"http://{host}:{port}", f"TAP sync via {host}")


OLD_DID = "ivo://vlkb.test/vlkb?old-ingest/migrated.fits"


def test_migration_makes_old_absolute_rows_relative(database: Database, servers) -> None:
    """A database last migrated by an older vlkb holds absolute URLs: 0004 rewrites them."""
    table = find_table("ivoa.obscore")
    cols = [c.name for c in table.columns if not c.generated]
    names = ", ".join(f'"{c}"' for c in cols)
    old_key = OLD_DID.split("?", 1)[1]
    values = {"obs_publisher_did": OLD_DID, "access_url": f"http://old-host.example:8000/vlkb{links('', OLD_DID)}",
              "preview": f"http://old-host.example:8000/vlkb/datalink/preview/{old_key}"}
    picked = ", ".join("%s" if c in values else f'"{c}"' for c in cols)
    with psycopg.connect(database.url) as conn:
        try:
            # a copy of a public row, written as the old ingest did
            conn.execute(f"INSERT INTO ivoa.obscore ({names}) SELECT {picked} FROM ivoa.obscore"
                         " WHERE data_rights = 'public' ORDER BY obs_publisher_did LIMIT 1",
                         [values[c] for c in cols if c in values])
            conn.execute("UPDATE vlkb.alembic_version SET version_num = '0003'")
            conn.commit()
            migrate(database.url)
            stored = conn.execute("SELECT access_url, preview FROM ivoa.obscore WHERE obs_publisher_did = %s",
                                  (OLD_DID,)).fetchone()
            assert stored == (links("", OLD_DID).lstrip("/"), f"datalink/preview/{old_key}")
            assert conn.execute("SELECT version_num FROM vlkb.alembic_version").fetchone()[0] >= "0004"  # or later
            for base, server in servers.items():
                rows = tap_sync(server, f"{QUERY} WHERE obs_publisher_did = '{OLD_DID}'")
                check_urls(rows, base, "migrated row")
        finally:
            conn.rollback()
            conn.execute("DELETE FROM ivoa.obscore WHERE obs_publisher_did = %s", (OLD_DID,))
            conn.commit()
