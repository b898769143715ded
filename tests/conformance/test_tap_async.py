"""TAP async (UWS 1.1) against the real server: pyvo, raw HTTP, the UWS XSD, and taplint."""

from __future__ import annotations

import re
import secrets
import threading
import time

import httpx
import psycopg
import pytest
import pyvo

from tests.conformance.test_taplint import problems, run_taplint
from tests.xsd import assert_valid

UWS = "http://www.ivoa.net/xml/UWS/v1.0"
NSP = {"uws": UWS}
QUERY = "SELECT TOP 5 table_name FROM TAP_SCHEMA.tables"

pytestmark = pytest.mark.timeout(120)


def _create(http: httpx.Client, **params: str) -> str:
    r = http.post("/tap/async", data={"LANG": "ADQL", "QUERY": QUERY, **params})
    assert r.status_code == 303, r.text
    return r.headers["location"]


def _wait(http: httpx.Client, url: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        phase = http.get(url + "/phase").text
        if phase not in ("PENDING", "QUEUED", "EXECUTING"):
            return phase
        time.sleep(0.1)
    raise AssertionError(f"{url} still {phase}")


def test_pyvo_run_async(server) -> None:
    svc = pyvo.dal.TAPService(server.url + "/tap")
    result = svc.run_async(QUERY)
    assert len(result) == 5


def test_pyvo_submit_wait_fetch(server) -> None:
    svc = pyvo.dal.TAPService(server.url + "/tap")
    job = svc.submit_job(QUERY, maxrec=3)
    assert job.phase == "PENDING"
    job.run()
    job.wait(timeout=30)
    assert job.phase == "COMPLETED"
    table = job.fetch_result()
    assert len(table) == 3
    job.delete()


def test_job_documents_valid(http: httpx.Client) -> None:
    url = _create(http, PHASE="RUN", RUNID="r1")
    assert _wait(http, url) == "COMPLETED"
    root = assert_valid(http.get(url).content, UWS)
    assert root.findtext("uws:phase", namespaces=NSP) == "COMPLETED"
    assert root.findtext("uws:runId", namespaces=NSP) == "r1"
    assert_valid(http.get(url + "/results").content, UWS)
    assert_valid(http.get(url + "/parameters").content, UWS)
    assert_valid(http.get("/tap/async").content, UWS)
    r = http.get(url + "/results/result")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/x-votable+xml")
    assert int(r.headers["content-length"]) == len(r.content)
    assert b"TAP_SCHEMA" not in r.content[:0]


def test_phase_destruction_delete(http: httpx.Client) -> None:
    url = _create(http)
    assert http.get(url + "/phase").text == "PENDING"
    r = http.post(url + "/executionduration", data={"EXECUTIONDURATION": "30"})
    assert r.status_code == 303
    assert http.get(url + "/executionduration").text == "30"
    r = http.post(url + "/destruction", data={"DESTRUCTION": "2030-01-01T00:00:00Z"})
    assert r.status_code == 303
    assert re.match(r"\d{4}-\d\d-\d\dT", http.get(url + "/destruction").text)
    assert http.post(url + "/phase", data={"PHASE": "NONSENSE"}).status_code == 400
    r = http.post(url + "/phase", data={"PHASE": "ABORT"})
    assert r.status_code == 303
    assert http.get(url + "/phase").text == "ABORTED"
    r = http.post(url, data={"ACTION": "DELETE"})
    assert r.status_code == 303
    assert r.headers["location"].endswith("/tap/async")
    assert http.get(url).status_code == 404


def test_error_job(http: httpx.Client) -> None:
    r = http.post("/tap/async", data={"LANG": "ADQL", "QUERY": "SELECT nope FROM nowhere", "PHASE": "RUN"})
    url = r.headers["location"]
    assert _wait(http, url) == "ERROR"
    root = assert_valid(http.get(url).content, UWS)
    assert root.find("uws:errorSummary", namespaces=NSP) is not None
    err = http.get(url + "/error")
    assert b"QUERY_STATUS" in err.content


def test_wait_blocks_until_done(http: httpx.Client) -> None:
    url = _create(http, PHASE="RUN")
    r = http.get(url, params={"WAIT": "20"})
    root = assert_valid(r.content, UWS)
    assert root.findtext("uws:phase", namespaces=NSP) in ("QUEUED", "EXECUTING", "COMPLETED")
    # a finished job answers at once
    _wait(http, url)
    start = time.monotonic()
    http.get(url, params={"WAIT": "10"})
    assert time.monotonic() - start < 2


def test_wait_wakes_when_another_process_moves_the_job(database, http: httpx.Client) -> None:
    """WAIT on a PENDING job returns its new phase as soon as another process changes it (here: the
    test, straight in the database, as a ``vlkb worker`` or the reaper would), woken by the database's
    notification: while the server listens, it does not poll the row (it would re-read it only after
    10 s, past this WAIT's 8 s, so without the notification the answer would still say PENDING)."""
    url = _create(http)
    job_id = url.rstrip("/").rsplit("/", 1)[1]

    def move() -> None:
        time.sleep(1.0)
        with psycopg.connect(database.url, autocommit=True) as conn:
            conn.execute("UPDATE vlkb.jobs SET phase = 'ABORTED', end_time = now() WHERE job_id = %s", (job_id,))

    http.get(url, params={"WAIT": "1"})  # the first WAIT of the process starts its listener
    with psycopg.connect(database.url) as conn:
        listeners = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                                 ("vlkb-job-phase-listen",)).fetchone()[0]
    assert listeners >= 1
    mover = threading.Thread(target=move)
    mover.start()
    try:
        r = http.get(url, params={"WAIT": "8"})
    finally:
        mover.join()
    root = assert_valid(r.content, UWS)
    assert root.findtext("uws:phase", namespaces=NSP) == "ABORTED"


def test_phase_changes_and_deletions_are_announced(database) -> None:
    """The database announces a job's change of phase and its deletion (payload: its id), and
    nothing else about it."""
    job_id = f"notify-{secrets.token_hex(4)}"
    with psycopg.connect(database.url, autocommit=True) as listener, \
            psycopg.connect(database.url, autocommit=True) as conn:
        listener.execute("LISTEN vlkb_job_phase")
        conn.execute("INSERT INTO vlkb.jobs (job_id, kind, parameters) VALUES (%s, 'tap', '{}')", (job_id,))
        conn.execute("UPDATE vlkb.jobs SET progress = '1 of 2' WHERE job_id = %s", (job_id,))
        conn.execute("UPDATE vlkb.jobs SET phase = 'PENDING' WHERE job_id = %s", (job_id,))  # unchanged
        conn.execute("UPDATE vlkb.jobs SET phase = 'ABORTED' WHERE job_id = %s", (job_id,))
        conn.execute("DELETE FROM vlkb.jobs WHERE job_id = %s", (job_id,))
        seen = [n.payload for n in listener.notifies(timeout=2, stop_after=10)]
    # other jobs of the session may be announced meanwhile: only this one's count
    assert [p for p in seen if p == job_id] == [job_id, job_id]


def test_bad_parameters_end_in_error(http: httpx.Client) -> None:
    r = http.post("/tap/async", data={"QUERY": QUERY, "PHASE": "RUN"})
    assert r.status_code == 303
    url = r.headers["location"]
    assert _wait(http, url) == "ERROR"
    assert b"LANG" in http.get(url + "/error").content


def test_taplint_uws_stages_clean(server) -> None:
    stages = "TMV TME TMS TMC CAP AVV QAS UWS"
    out = run_taplint(server.url + "/tap", stages)
    found = problems(out)
    assert not found, "taplint reported:\n" + "\n".join(found)
    for stage in ("QAS", "UWS"):
        assert re.search(rf"Section {stage}:", out), f"stage {stage} did not run:\n{out[-2000:]}"
