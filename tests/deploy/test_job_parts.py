"""One job's work spread over every process running jobs (issues 18 and 19): ``vo/uws/parts.py``.

Real processes on a database of this test's own with the demo data: ``vlkb serve`` with the celery
executor, ``vlkb worker`` processes over a real redis-server (one job thread each, so the job's own
runner holds its worker's only slot and every other part is run by the other worker or by the runner
itself), and a ``vlkb serve`` with the local executor and one slot. What is asserted is what the
issues promise: a stamps job and a four-tile source-finding job run parts in two worker processes
(``vlkb.job_parts.worker``) and hand back every source and tile once, in order; one process with one
slot finishes a job alone; a worker killed with SIGKILL while running a part has its part run again
and the job completes with each tile once; ABORT stops the parts and leaves nothing in the results
store; a part's UsageError is the job's error. The correctness of the stamps and catalogues against
the demo generator's truth is tested by tests/conformance/test_stamps.py and test_sfind.py, whose
jobs run through the same parts.
"""

from __future__ import annotations

import io
import shutil
import tarfile
import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from astropy.io.votable import parse_single_table
from lxml import etree
from psycopg.rows import dict_row

from tests.conformance.jobstack import JobStack, Proc, job_stack, wait_phase, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

NS = {"uws": "http://www.ivoa.net/xml/UWS/v1.0", "xlink": "http://www.w3.org/1999/xlink"}
SURVEYS = ["Hi-GAL/70 um", "Hi-GAL/160 um", "Hi-GAL/250 um"]
REGION = {"CIRCLE": "0 0 0.08", "POSSYS": "GALACTIC"}


@pytest.fixture(scope="module")
def stack() -> Iterator[JobStack]:
    """A cluster with the demo data and a redis-server of this module's own: no other test's
    process claims its jobs or parts (they would write to another results store)."""
    for tool in ("redis-server",):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Makefile APT_PACKAGES)")
    with job_stack("vlkb-parts-", demo=True) as s:
        yield s


CELERY = {"VLKB_EXECUTOR": "celery", "VLKB_JOBS_PER_OWNER": "0", "VLKB_WORKER_CONCURRENCY": "1"}


@pytest.fixture(scope="module")
def celery(stack: JobStack) -> Iterator[tuple[str, list[Proc]]]:
    """The celery service and two ``vlkb worker`` processes of one job thread each."""
    proc, base = stack.serve("celery-service", **CELERY)
    workers = stack.workers(["worker-a", "worker-b"], **CELERY)
    yield base, workers
    for w in workers:
        w.stop()
    proc.stop()


def _askap(stack: JobStack) -> list[str]:
    with psycopg.connect(stack.db_url) as c:
        dids = [r[0] for r in c.execute("SELECT obs_publisher_did FROM ivoa.obscore WHERE obs_collection ="
                                        " 'ASKAP-EMU' ORDER BY 1")]
    assert len(dids) == 4
    return dids


def _submit(base: str, path: str, data: dict, files: dict | None = None) -> str:
    r = httpx.post(f"{base}/{path}/async", data={**data, "PHASE": "RUN"}, files=files, timeout=60)
    assert r.status_code == 303, r.text[:500]
    return r.headers["location"].rstrip("/").rsplit("/", 1)[1]


def _parts(stack: JobStack, job_id: str) -> list[dict]:
    with psycopg.connect(stack.db_url) as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT part, name, state, worker, runs, output, error FROM vlkb.job_parts WHERE job_id = %s"
                    " ORDER BY part", (job_id,))
        return cur.fetchall()


def _pid(worker: object) -> int:
    return int(str(worker).split(":")[1])


def _running_in(stack: JobStack, job_id: str, pid: int, timeout: float = 120) -> list[dict]:
    """Wait for parts of ``job_id`` running in process ``pid``; their rows."""
    deadline = time.monotonic() + timeout
    while not (rows := [p for p in _parts(stack, job_id) if p["state"] == "running" and _pid(p["worker"]) == pid]):
        assert time.monotonic() < deadline, f"no part of {job_id} ran in {pid}: {_parts(stack, job_id)}"
        time.sleep(0.02)
    return rows


def _results(base: str, path: str, job_id: str) -> dict[str, str]:
    doc = etree.fromstring(httpx.get(f"{base}/{path}/async/{job_id}/results", timeout=30).content)
    return {e.get("id"): e.get(f"{{{NS['xlink']}}}href") for e in doc.iterfind("uws:result", NS)}


def _left(stack: JobStack, job_id: str) -> list[str]:
    """The files of ``job_id`` in the results store."""
    folder = stack.home / "results" / job_id
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _sources_table(n: int) -> bytes:
    # a grid over the demo Hi-GAL tiles around (0, 0)
    rows = [f"s{i:05d},{(-0.2 + 0.4 * (i % 50) / 50) % 360:.5f},{-0.15 + 0.3 * (i // 50) / (n // 50):.5f}"
            for i in range(n)]
    return ("name,glon,glat\n" + "\n".join(rows) + "\n").encode()


def test_stamps_and_sfind_run_their_parts_in_two_worker_processes(stack: JobStack, celery) -> None:
    base, workers = celery
    pids = {w.pid for w in workers}
    n = 1000  # five chunks of 200 sources
    # one after the other: two jobs at once would each hold one worker's only slot, and make their parts alone
    stamps = _submit(base, "stamps", {"SURVEY": SURVEYS, "SIZE": "0.005"},
                     files={"SOURCES": ("sources.csv", _sources_table(n), "text/csv")})
    wait_phase(stack, stamps, ("COMPLETED", "ERROR", "ABORTED"), timeout=600)
    sfind = _submit(base, "sfind", {"APP": "aegean", "ID": _askap(stack), **REGION})
    for job_id in (stamps, sfind):
        row = wait_phase(stack, job_id, ("COMPLETED", "ERROR", "ABORTED"), timeout=600)
        assert row["phase"] == "COMPLETED", row["error_message"]
        parts = _parts(stack, job_id)
        assert [p["state"] for p in parts] == ["done"] * len(parts) and all(p["runs"] == 1 for p in parts)
        # the parts ran in both worker processes (the job's own runner took some)
        assert {_pid(p["worker"]) for p in parts} == pids, parts
        assert _pid(row["worker"]) in pids
        # every part's output was read back and removed; none is a result
        assert not [f for f in _left(stack, job_id) if f.startswith(".part")]
        assert not [r for r in _results(base, "stamps" if job_id == stamps else "sfind", job_id) if r.startswith(".")]
    assert len(_parts(stack, stamps)) == n // 200 and len(_parts(stack, sfind)) == 4

    # every source's stamps once, in the order of the table
    res = _results(base, "stamps", stamps)
    manifest = parse_single_table(io.BytesIO(httpx.get(res["manifest"], timeout=60).content)).to_table()
    assert len(manifest) == n * len(SURVEYS) and set(manifest["status"]) == {"OK"}
    names = [str(s) for s in manifest["source"]]
    assert names == [f"s{i:05d}" for i in range(n) for _ in SURVEYS]
    with tarfile.open(fileobj=io.BytesIO(httpx.get(res["stamps.tar.gz"], timeout=60).content)) as tar:
        files = tar.getnames()
    assert len(files) == len(set(files)) == n * len(SURVEYS) + 1

    report = httpx.get(_results(base, "sfind", sfind)["report"], timeout=30).json()
    assert [i["id"] for i in report["inputs"]] == _askap(stack)  # tiles in the order given
    assert report["progress"] == "4 of 4 tiles"


def test_a_worker_killed_while_running_a_part(stack: JobStack, celery) -> None:
    """SIGKILL of the worker running a tile that is not the job's own: the tile is queued again
    (by the job's runner, which sees the pid gone) and run once more; the job completes with each
    tile once, and no part output is left."""
    base, workers = celery
    askap = _askap(stack)
    for attempt in range(3):
        job_id = _submit(base, "sfind", {"APP": "aegean", "ID": askap, **REGION})
        row = wait_phase(stack, job_id, ("EXECUTING",), timeout=120)
        parent = _pid(row["worker"])
        other = next(w for w in workers if w.pid != parent)
        victim = _running_in(stack, job_id, other.pid)
        other.kill()
        done = wait_phase(stack, job_id, ("COMPLETED", "ERROR", "ABORTED"), timeout=600)
        assert done["phase"] == "COMPLETED", done["error_message"]
        parts = _parts(stack, job_id)
        assert [p["state"] for p in parts] == ["done"] * 4
        # restart the killed worker for the next tests
        workers[workers.index(other)] = stack.worker(f"worker-restarted-{attempt}", **CELERY)
        again = [p for p in parts if p["runs"] == 2]
        if not again:
            continue  # the part had ended just before the kill: try again
        assert [p["part"] for p in again] == [victim[0]["part"]]
        assert _pid(again[0]["worker"]) != other.pid
        report = httpx.get(_results(base, "sfind", job_id)["report"], timeout=30).json()
        assert [i["id"] for i in report["inputs"]] == askap  # each tile once, in order
        assert sum(i["components"] for i in report["inputs"]) >= report["counts"]["components"] > 0
        assert not [f for f in _left(stack, job_id) if f.startswith(".part")]
        return
    pytest.fail("the killed worker's part had always ended before the kill")


def test_abort_stops_the_parts_and_leaves_nothing(stack: JobStack, celery) -> None:
    base, _ = celery
    job_id = _submit(base, "sfind", {"APP": "aegean", "ID": _askap(stack), **REGION})
    wait_until("parts running", lambda: any(p["state"] == "running" for p in _parts(stack, job_id)), timeout=120)
    r = httpx.post(f"{base}/sfind/async/{job_id}/phase", data={"PHASE": "ABORT"}, timeout=30)
    assert r.status_code == 303
    assert wait_phase(stack, job_id, ("ABORTED", "COMPLETED", "ERROR"))["phase"] == "ABORTED"
    # the workers notice at their next heartbeat; a finder already in a tile ends it first (generous)
    wait_until("no part running", lambda: all(p["state"] != "running" for p in _parts(stack, job_id)), timeout=120)
    wait_until("the results store emptied", lambda: _left(stack, job_id) == [], timeout=30)
    time.sleep(2)  # and nothing appears afterwards
    assert _left(stack, job_id) == []
    assert _results(base, "sfind", job_id) == {}


def test_a_parts_usage_error_is_the_jobs_error(stack: JobStack, celery) -> None:
    """Tile 2 is a cube cut with no BAND or VELO (or outside the region): its part raises a UsageError,
    which ends the job in ERROR with it."""
    base, _ = celery
    askap = _askap(stack)
    with psycopg.connect(stack.db_url) as c:
        cube = c.execute("SELECT obs_publisher_did FROM ivoa.obscore WHERE obs_collection = 'CHaMP'"
                         " AND obs_title LIKE '13CO%' ORDER BY 1 LIMIT 1").fetchone()[0]
    job_id = _submit(base, "sfind", {"APP": "aegean", "ID": [askap[0], cube], **REGION})
    row = wait_phase(stack, job_id, ("COMPLETED", "ERROR", "ABORTED"), timeout=300)
    text = httpx.get(f"{base}/sfind/async/{job_id}/error", timeout=30).text
    assert row["phase"] == "ERROR" and "UsageError" in str(row["error_message"]), row
    assert "tile 2 of 2" in str(row["error_message"]) and "tile 2 of 2" in text
    assert [p["state"] for p in _parts(stack, job_id)][1] == "error"
    wait_until("the results store emptied", lambda: _left(stack, job_id) in ([],), timeout=30)


def test_one_local_process_with_one_slot_runs_a_job_alone(stack: JobStack, celery) -> None:
    """The embedded default with one slot: the job's runner holds it and makes every part itself."""
    base, workers = celery
    for w in workers:  # nobody else takes parts
        w.stop()
    proc, local = stack.serve("local-one", VLKB_LOCAL_CONCURRENCY="1", VLKB_JOBS_PER_OWNER="0")
    n = 600
    job_id = _submit(local, "stamps", {"SURVEY": SURVEYS[0], "SIZE": "0.005"},
                     files={"SOURCES": ("sources.csv", _sources_table(n), "text/csv")})
    row = wait_phase(stack, job_id, ("COMPLETED", "ERROR", "ABORTED"), timeout=300)
    assert row["phase"] == "COMPLETED", row["error_message"]
    parts = _parts(stack, job_id)
    assert len(parts) == 3 and {_pid(p["worker"]) for p in parts} == {proc.pid}
    manifest = parse_single_table(io.BytesIO(httpx.get(_results(local, "stamps", job_id)["manifest"],
                                                        timeout=60).content)).to_table()
    assert [str(s) for s in manifest["source"]] == [f"s{i:05d}" for i in range(n)]
    proc.stop()
