"""Both executors with real processes: ``vlkb serve`` (local and celery), two ``vlkb worker``
processes, a real redis-server, SIGKILL during running jobs, exactly-once proved by the job rows.

Every job row records the worker that claimed it (``host:pid:random``) and how many times it was
claimed (``runs``): exactly once is ``runs == 1`` for every job, whatever was killed.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.conformance.jobstack import (
    FAST,
    FOREVER,
    STREAM,
    JobStack,
    Proc,
    job_stack,
    submit,
    wait_phase,
    wait_until,
)
from tests.conftest import free_port

pytestmark = pytest.mark.timeout(240)

BIG = {"MAXREC": "10000000"}


@pytest.fixture(scope="module")
def stack() -> Iterator[JobStack]:
    with job_stack("vlkb-jobs-") as s:
        yield s


def _parts(root: Path, job_id: str) -> list[Path]:
    return sorted((root / job_id).glob("*")) if (root / job_id).exists() else []


def _fetch_result(http: httpx.Client, job_id: str) -> httpx.Response:
    r = http.get(f"/tap/async/{job_id}/results/result")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/x-votable+xml")
    assert int(r.headers["content-length"]) == len(r.content)
    return r


def test_local_service_killed_during_a_job(stack: JobStack) -> None:
    """kill -9 of ``vlkb serve`` (local executor) while a job streams its result and another
    waits QUEUED: after a restart the first is ERROR (the process died), the second runs once,
    and the partial result was never served and is gone."""
    env = {"VLKB_LOCAL_CONCURRENCY": "1"}
    proc, base = stack.serve("local-1", **env)
    root = stack.home / "results"
    with httpx.Client(base_url=base, timeout=30) as http:
        slow = submit(http, STREAM, **BIG)
        queued = submit(http, FAST)
        wait_phase(stack, slow, ("EXECUTING",))
        # the result is being streamed to the store under a temporary name, and not listed
        wait_until("a partial result file", lambda: any(p.name.endswith(".part") for p in _parts(root, slow)))
        assert http.get(f"/tap/async/{slow}/results/result").status_code == 404
        assert stack.job(queued)["phase"] == "QUEUED"
    proc.kill()
    assert stack.job(slow)["phase"] == "EXECUTING"
    # the database notices the dead client (client_connection_check_interval) and ends the query
    wait_until("the dead job's query to end", lambda: stack.backends(slow) == 0)

    proc, base = stack.serve("local-2", **env)
    try:
        dead = wait_phase(stack, slow, ("ERROR", "COMPLETED"))
        assert dead["phase"] == "ERROR" and "died" in str(dead["error_message"])
        assert dead["runs"] == 1
        assert _parts(root, slow) == []
        done = wait_phase(stack, queued, ("COMPLETED", "ERROR"))
        assert done["phase"] == "COMPLETED" and done["runs"] == 1
        with httpx.Client(base_url=base, timeout=30) as http:
            assert b"QUERY_STATUS" in http.get(f"/tap/async/{slow}/error").content
            assert http.get(f"/tap/async/{slow}/results/result").status_code == 404
            _fetch_result(http, queued)
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def celery(stack: JobStack) -> Iterator[tuple[str, list[Proc]]]:
    """A celery service whose results go to a file:// store, and two workers."""
    extra = {"VLKB_EXECUTOR": "celery", "VLKB_RESULTS_URL": f"file://{stack.home}/store",
             "VLKB_JOBS_PER_OWNER": "0", "VLKB_WORKER_CONCURRENCY": "2"}
    proc, base = stack.serve("celery-service", **extra)
    # each worker serves its own metrics (VLKB_WORKER_METRICS_PORT): what its jobs did
    workers = [stack.worker(f"worker-{i}", **extra, VLKB_WORKER_METRICS_PORT=str(free_port())) for i in range(2)]
    yield base, workers
    for w in workers:
        w.stop()
    proc.stop()


def _pid(row: dict[str, object]) -> int:
    return int(str(row["worker"]).split(":")[1])


def test_celery_twenty_jobs_exactly_once_on_both_workers(stack: JobStack, celery: tuple[str, list[Proc]]) -> None:
    base, workers = celery
    with httpx.Client(base_url=base, timeout=30) as http, ThreadPoolExecutor(20) as pool:
        ids = list(pool.map(lambda _: submit(http, FAST), range(20)))
        rows = [wait_phase(stack, job_id, ("COMPLETED", "ERROR", "ABORTED"), timeout=120) for job_id in ids]
        assert [r["phase"] for r in rows] == ["COMPLETED"] * 20, [r["error_message"] for r in rows]
        assert [r["runs"] for r in rows] == [1] * 20
        ran_on = {_pid(r) for r in rows}
        assert ran_on == {w.pid for w in workers}, f"jobs ran on {ran_on}, workers are {[w.pid for w in workers]}"
        # the workers' own metrics count the rows their jobs encoded: one per job, 20 in all
        rows = 0.0
        for w in workers:
            text = httpx.get(f"http://127.0.0.1:{w.env['VLKB_WORKER_METRICS_PORT']}/metrics", timeout=30).text
            rows += sum(s.value for fam in text_string_to_metric_families(text) for s in fam.samples
                        if s.name == "vlkb_rows_streamed_total")
        assert rows == 20
        # results went to the configured store and are served from it
        for job_id in ids[:3]:
            assert (stack.home / "store" / job_id / "result").exists()
            assert b'name="n"' in _fetch_result(http, job_id).content


def test_celery_worker_killed_during_a_job(stack: JobStack, celery: tuple[str, list[Proc]]) -> None:
    """kill -9 of the worker running a job: it ends in ERROR, its partial result is removed and
    never served, the jobs queued behind it all run once on the other worker, and a new worker
    takes work again."""
    base, workers = celery
    store = stack.home / "store"
    with httpx.Client(base_url=base, timeout=30) as http:
        slow = submit(http, STREAM, **BIG)
        row = wait_phase(stack, slow, ("EXECUTING",))
        victim = next(w for w in workers if w.pid == _pid(row))
        wait_until("a partial result file", lambda: any(p.name.endswith(".part") for p in _parts(store, slow)))
        behind = [submit(http, FAST) for _ in range(6)]
        victim.kill()
        dead = wait_phase(stack, slow, ("ERROR", "COMPLETED"), timeout=30)
        assert dead["phase"] == "ERROR" and "died" in str(dead["error_message"]), dead
        assert dead["runs"] == 1
        wait_until("the dead job's query to end", lambda: stack.backends(slow) == 0)
        assert _parts(store, slow) == []
        assert http.get(f"/tap/async/{slow}/results/result").status_code == 404
        survivor = next(w for w in workers if w is not victim)
        ends = []
        for job_id in behind:
            done = wait_phase(stack, job_id, ("COMPLETED", "ERROR"), timeout=60)
            assert done["runs"] == 1
            ends.append((done["phase"], _pid(done)))
            if done["phase"] == "ERROR":
                # the victim's other thread had claimed it: it died with the victim
                assert _pid(done) == victim.pid and "died" in str(done["error_message"]), done
        assert ("COMPLETED", survivor.pid) in ends
        assert all(pid == survivor.pid for phase, pid in ends if phase == "COMPLETED" and pid != victim.pid)
        # a replacement worker joins and takes work
        workers[workers.index(victim)] = stack.worker("worker-replacement", **{
            k: v for k, v in victim.env.items() if k.startswith("VLKB_")})
        more = [submit(http, FAST) for _ in range(4)]
        for job_id in more:
            assert wait_phase(stack, job_id, ("COMPLETED", "ERROR"), timeout=60)["phase"] == "COMPLETED"


def test_celery_abort_and_execution_duration(stack: JobStack, celery: tuple[str, list[Proc]]) -> None:
    base, _ = celery
    with httpx.Client(base_url=base, timeout=30) as http:
        # ABORT reaches the query on the worker's machine at once (pg_cancel_backend)
        job = submit(http, FOREVER)
        wait_phase(stack, job, ("EXECUTING",))
        wait_until("the query to start", lambda: stack.backends(job) == 1)
        assert http.post(f"/tap/async/{job}/phase", data={"PHASE": "ABORT"}).status_code == 303
        assert stack.job(job)["phase"] == "ABORTED"
        wait_until("the aborted query to end", lambda: stack.backends(job) == 0, timeout=5)

        # executionDuration is enforced on the worker: the query is cancelled, the job ends in ERROR
        r = http.post("/tap/async", data={"LANG": "ADQL", "QUERY": FOREVER})
        url = r.headers["location"]
        assert http.post(url + "/executionduration", data={"EXECUTIONDURATION": "1"}).status_code == 303
        assert http.post(url + "/phase", data={"PHASE": "RUN"}).status_code == 303
        job = url.rsplit("/", 1)[1]
        row = wait_phase(stack, job, ("ERROR", "COMPLETED"), timeout=20)
        assert row["phase"] == "ERROR" and "execution duration" in str(row["error_message"])
        assert stack.backends(job) == 0


def test_celery_destruction_sweep(stack: JobStack, celery: tuple[str, list[Proc]]) -> None:
    base, _ = celery
    store = stack.home / "store"
    with httpx.Client(base_url=base, timeout=30) as http:
        job = submit(http, FAST)
        assert wait_phase(stack, job, ("COMPLETED", "ERROR"))["phase"] == "COMPLETED"
        assert (store / job / "result").exists()
        soon = (datetime.now(UTC) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert http.post(f"/tap/async/{job}/destruction", data={"DESTRUCTION": soon}).status_code == 303
        wait_until("the job to be destroyed", lambda: http.get(f"/tap/async/{job}").status_code == 404, timeout=15)
        assert not (store / job).exists()


def test_celery_lost_wakeups_are_sent_again(stack: JobStack, celery: tuple[str, list[Proc]]) -> None:
    """Jobs QUEUED while no worker runs, whose broker messages are then lost (FLUSHALL), still run
    once a worker is back: PostgreSQL is the queue of record, the service's sweep wakes workers."""
    base, workers = celery
    env = {k: v for k, v in workers[0].env.items() if k.startswith("VLKB_")}
    for w in workers:
        w.kill()  # idle: nothing to lose but their connection to the broker
    with httpx.Client(base_url=base, timeout=30) as http:
        ids = [submit(http, FAST) for _ in range(3)]
        redis.Redis.from_url(stack.redis_url).flushall()
        workers[:] = [stack.worker("worker-after-flush", **env)]
        for job_id in ids:
            row = wait_phase(stack, job_id, ("COMPLETED", "ERROR"), timeout=30)
            assert row["phase"] == "COMPLETED" and row["runs"] == 1
