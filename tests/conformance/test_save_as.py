"""``SAVE_AS`` (issue 17): a stamps job's manifest kept as a user table, over a real server and issuer.

The expected rows are the job's own manifest result, parsed with astropy independently of the
table the service saved; the refusals are checked in the job's error and in the registry read as
the database owner (no table made). Source finding's ``SAVE_AS`` is checked in
tests/conformance/test_sfind.py, on a job that test runs anyway.
"""

from __future__ import annotations

import io
import signal
import time
from xml.etree import ElementTree

import httpx
import numpy as np
import psycopg
import pytest
from astropy.io.votable import parse_single_table

from tests.conftest import running_server
from tests.oidc_issuer import TestIssuer
from vo.usertables import schema_of

OWNER, MEMBER, OTHER, QUOTA = "saowner", "samember", "saother", "saquota"
TEAM = "sa-team"
SURVEYS = ["Hi-GAL/70 um", "Hi-GAL/160 um"]
#: two positions (Galactic): one the demo's Hi-GAL tiles cover, one no survey covers (a manifest
#: row with status ERROR): 2 x 2 manifest rows
POSITIONS = {"POS": ["CIRCLE 0.1 0.05 0.01", "CIRCLE 30 0 0.01"], "POSSYS": "GALACTIC", "SURVEY": SURVEYS}


def token(issuer: TestIssuer, who: str) -> dict[str, str]:
    if who == "anonymous":
        return {}
    return {"Authorization": f"Bearer {issuer.token(who, [TEAM] if who == MEMBER else ['sa-' + who])}"}


def run_job(server, headers: dict[str, str], data: dict, timeout: float = 240) -> tuple[str, str]:
    """Create and run a stamps job; its URL and final phase (generous timeout: the machine is shared)."""
    resp = httpx.post(server.url + "/stamps/async", data={**data, "PHASE": "RUN"}, headers=headers, timeout=60)
    assert resp.status_code == 303, resp.text[:400]
    url = resp.headers["location"]
    url = server.url + url if url.startswith("/") else url
    return url, wait_done(url, headers, timeout)


def wait_done(url: str, headers: dict[str, str], timeout: float) -> str:
    """The job's phase once it has ended (or when ``timeout`` runs out)."""
    deadline = time.monotonic() + timeout
    phase = ""
    while time.monotonic() < deadline:
        phase = httpx.get(url + "/phase", headers=headers, timeout=60).text.strip()
        if phase in ("COMPLETED", "ERROR", "ABORTED"):
            break
        httpx.get(url, params={"WAIT": "5"}, headers=headers, timeout=60)  # UWS blocking wait on the job
    return phase


def error_text(url: str, headers: dict[str, str]) -> str:
    return " ".join(ElementTree.fromstring(httpx.get(url + "/error", headers=headers, timeout=60).content).itertext())


def result_names(url: str, headers: dict[str, str]) -> set[str]:
    doc = ElementTree.fromstring(httpx.get(url + "/results", headers=headers, timeout=60).content)
    return {e.get("id") or "" for e in doc.iter() if e.tag.endswith("result")}


def result(url: str, name: str, headers: dict[str, str]) -> bytes:
    resp = httpx.get(f"{url}/results/{name}", headers=headers, timeout=60, follow_redirects=True)
    assert resp.status_code == 200, resp.text[:300]
    return resp.content


def tap(server, headers: dict[str, str], query: str) -> httpx.Response:
    return httpx.post(server.url + "/tap/sync", data={"LANG": "ADQL", "QUERY": query, "FORMAT": "csv"},
                      headers=headers, timeout=120)


def csv_rows(resp: httpx.Response) -> list[list[str]]:
    assert resp.status_code == 200, resp.text[:400]
    return [line.split(",") for line in resp.text.strip().splitlines()[1:]]


def dali_message(resp: httpx.Response) -> str:
    root = ElementTree.fromstring(resp.content)
    infos = [i for i in root.iter() if i.tag.endswith("INFO") and i.get("name") == "QUERY_STATUS"]
    assert infos and infos[-1].get("value") == "ERROR", resp.text[:300]
    return infos[-1].text or ""


def registered(database, schema: str, name: str) -> bool:
    """Whether the registry holds ``schema.name`` or PostgreSQL has the table (read as the database owner)."""
    with psycopg.connect(database.url) as c:
        entry = c.execute("SELECT 1 FROM vlkb.user_tables WHERE schema_name = %s AND table_name = %s",
                          (schema, name)).fetchone()
        table = c.execute("SELECT to_regclass(%s)", (f'"{schema}"."{name}"',)).fetchone()
    return entry is not None or table[0] is not None


@pytest.fixture(scope="module")
def saved(auth_server, issuer) -> tuple[str, str]:
    """A stamps job of the owner with SAVE_AS (shared with TEAM): its URL and the table's name."""
    name = f"{schema_of(OWNER)}.stamps_manifest"
    h = token(issuer, OWNER)
    url, phase = run_job(auth_server, h, {**POSITIONS, "SAVE_AS": name, "SAVE_AS_GROUPS": TEAM})
    assert phase == "COMPLETED", error_text(url, h)
    yield url, name
    httpx.delete(f"{auth_server.url}/tap/tables/{name}", headers=h, timeout=60)


def test_the_manifest_is_saved_as_a_user_table(auth_server, issuer, saved) -> None:
    url, name = saved
    h = token(issuer, OWNER)
    manifest = parse_single_table(io.BytesIO(result(url, "manifest", h))).to_table()
    assert len(manifest) == 4 and sorted(manifest["status"]) == ["ERROR", "ERROR", "OK", "OK"]
    count = csv_rows(tap(auth_server, h, f"SELECT COUNT(*) FROM {name}"))
    assert int(count[0][0]) == len(manifest)
    got = csv_rows(tap(auth_server, h, f"SELECT source, survey, status, glon FROM {name} "
                                        "ORDER BY source, survey"))
    want = sorted((str(r["source"]), str(r["survey"]), str(r["status"]), float(r["glon"])) for r in manifest)
    assert [tuple(g[:3]) for g in got] == [w[:3] for w in want]
    assert np.allclose([float(g[3]) for g in got], [w[3] for w in want], rtol=0, atol=1e-9)
    # what was saved is recorded with the job
    assert "saved_as" in result_names(url, h)
    record = httpx.get(f"{url}/results/saved_as", headers=h, timeout=60, follow_redirects=True).json()
    assert record == {"table": name, "rows": len(manifest), "read_groups": [TEAM]}


def test_the_saved_table_is_read_by_its_owner_and_group_only(auth_server, issuer, saved) -> None:
    _, name = saved
    query = f"SELECT COUNT(*) FROM {name}"
    assert int(csv_rows(tap(auth_server, token(issuer, MEMBER), query))[0][0]) == 4
    missing = f"{name.split('.')[0]}.no_such_table"
    for who in ("anonymous", OTHER):
        resp = tap(auth_server, token(issuer, who), query)
        ref = tap(auth_server, token(issuer, who), f"SELECT COUNT(*) FROM {missing}")
        assert resp.status_code == ref.status_code == 400
        assert dali_message(resp).replace(name, "X") == dali_message(ref).replace(missing, "X")


@pytest.mark.parametrize(("who", "target", "needle"), [
    ("anonymous", f"{schema_of(OWNER)}.by_anonymous", "authenticated user"),
    (OWNER, f"{schema_of(OTHER)}.not_mine", f"only in your own schema, {schema_of(OWNER)}"),
    (OWNER, "compactsources.band70um_copy", "is a published schema"),
    (OWNER, f"{schema_of(OWNER)}.select", "reserved word"),
    (OWNER, "no_dot_here", "schema.table"),
])
def test_a_refused_save_as_ends_the_job_before_any_work(auth_server, issuer, database, who, target,
                                                         needle) -> None:
    h = token(issuer, who)
    url, phase = run_job(auth_server, h, {**POSITIONS, "SAVE_AS": target})
    assert phase == "ERROR"
    assert needle in error_text(url, h)
    assert result_names(url, h) == set()  # no stamp was made
    if "." in target:
        schema, table = target.split(".")
        assert not registered(database, schema, table)


def test_save_as_onto_an_existing_table_is_refused_and_leaves_it_alone(auth_server, issuer, saved) -> None:
    _, name = saved
    h = token(issuer, OWNER)
    url, phase = run_job(auth_server, h, {**POSITIONS, "SAVE_AS": name})
    assert phase == "ERROR"
    assert f"{name} already exists" in error_text(url, h)
    assert result_names(url, h) == set()
    assert int(csv_rows(tap(auth_server, h, f"SELECT COUNT(*) FROM {name}"))[0][0]) == 4


def test_save_as_is_for_async_jobs_only(auth_server, issuer) -> None:
    resp = httpx.get(auth_server.url + "/stamps/sync", headers=token(issuer, OWNER), timeout=120,
                     params={"POS": "CIRCLE 0.1 0.05 0.01", "POSSYS": "GALACTIC", "SURVEY": SURVEYS[0],
                             "SAVE_AS": f"{schema_of(OWNER)}.sync_stamps"})
    assert resp.status_code == 400 and "/stamps/async" in dali_message(resp)


@pytest.fixture(scope="module")
def small_quota(database, issuer):
    with running_server(database, oidc_issuer=issuer.url, oidc_jwks_refresh="0", user_tables_max_rows="3") as srv:
        yield srv


def test_a_manifest_over_the_quota_is_not_saved(small_quota, issuer, database) -> None:
    """The manifest has 4 rows and the quota is 3 (``saquota`` holds no other table)."""
    h = token(issuer, QUOTA)
    schema = schema_of(QUOTA)
    url, phase = run_job(small_quota, h, {**POSITIONS, "SAVE_AS": f"{schema}.too_big"})
    assert phase == "ERROR"
    text = error_text(url, h)
    assert "quota of 3 rows" in text and "nothing was written" in text, text
    assert not registered(database, schema, "too_big")


def test_a_job_keeps_the_quota_it_was_accepted_under(small_quota, auth_server, issuer, database) -> None:
    """A job accepted by the small-quota server and run by another process, configured with the
    default quota (a replica or worker after a change of settings), is still held to 3 rows: the
    quota is kept with the job when it is accepted. The accepting server is stopped (SIGSTOP)
    from before the job is queued until it ends, so it cannot be the one that claims it."""
    h = token(issuer, QUOTA)
    schema = schema_of(QUOTA)
    resp = httpx.post(small_quota.url + "/stamps/async", data={**POSITIONS, "SAVE_AS": f"{schema}.kept_quota"},
                      headers=h, timeout=60)
    assert resp.status_code == 303, resp.text[:400]
    job_id = resp.headers["location"].rstrip("/").rsplit("/", 1)[-1]
    small_quota.process.send_signal(signal.SIGSTOP)
    try:
        url, phase = run_job_elsewhere(auth_server, h, job_id)
    finally:
        small_quota.process.send_signal(signal.SIGCONT)
    with psycopg.connect(database.url) as c:
        worker = c.execute("SELECT worker FROM vlkb.jobs WHERE job_id = %s", (job_id,)).fetchone()[0]
    assert int(worker.split(":")[1]) != small_quota.process.pid, worker
    assert phase == "ERROR", phase
    text = error_text(url, h)
    assert "quota of 3 rows" in text and "nothing was written" in text, text
    assert not registered(database, schema, "kept_quota")


def run_job_elsewhere(server, headers: dict[str, str], job_id: str, timeout: float = 240) -> tuple[str, str]:
    """``PHASE=RUN`` of an existing stamps job through ``server``; its URL there and final phase."""
    url = f"{server.url}/stamps/async/{job_id}"
    resp = httpx.post(url + "/phase", data={"PHASE": "RUN"}, headers=headers, timeout=60)
    assert resp.status_code == 303, resp.text[:400]
    return url, wait_done(url, headers, timeout)
