"""The UWS job engine over the real database: state machine, compare-and-set, executor, reaper.

Jobs here are of kind ``test``, which the session's ``vlkb serve`` (if running) never claims.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TypeVar

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from db.jobs import JobStore, ResultRow
from vo.errors import NotFoundError, UsageError
from vo.uws.context import RunContext
from vo.uws.executor import LocalExecutor
from vo.uws.model import Phase
from vo.uws.results import ResultStore
from vo.uws.service import JobService

pytestmark = pytest.mark.timeout(60)

T = TypeVar("T")
KIND = "test"


def _hello(params: Mapping[str, list[str]], ctx: RunContext) -> list[ResultRow]:
    if params.get("FAIL"):
        raise UsageError("FAIL: asked to fail")
    if params.get("SLEEP"):
        # a long query ABORT must cancel
        with ctx.connect() as conn:
            conn.execute("SELECT pg_sleep(%s)", (float(params["SLEEP"][0]) if params["SLEEP"][0] != "1" else 30,))
    body = json.dumps(ctx.terms, sort_keys=True).encode() if params.get("TERMS") else b"hello"
    with ctx.results.writer(ctx.job_id, "result") as out:
        out.write(body)
    loc = ctx.results.location(ctx.job_id, "result")
    return [ResultRow(ctx.job_id, "result", loc, "text/plain", len(body))]


def _run(database, tmp_path: Path, body: Callable[[JobService], Awaitable[T]], *, start: bool = True,
         concurrency: int = 4, per_owner: int = 0, heartbeat: float = 10.0) -> T:
    async def main() -> T:
        async with AsyncConnectionPool(database.url, min_size=1, max_size=8, open=False) as pool:
            store = JobStore(pool)
            results = ResultStore(tmp_path / "results")
            executor = LocalExecutor(store, results, {KIND: _hello}, conninfo=database.url, poll=0.1,
                                     concurrency=concurrency, per_owner=per_owner, heartbeat=heartbeat)
            service = JobService(store, executor, results, execution_duration=60, destruction_days=1)
            if start:
                await executor.start()
            try:
                return await body(service)
            finally:
                await executor.stop()
                async with pool.connection() as conn:
                    await conn.execute("DELETE FROM vlkb.jobs WHERE kind = %s", (KIND,))

    return asyncio.run(main())


async def _until(service: JobService, job_id: str, phases: tuple[str, ...], timeout: float = 20) -> str:
    job = await service.store.get(job_id)
    assert job is not None
    for _ in range(int(timeout / 0.05)):
        if job.phase in phases:
            return job.phase
        await asyncio.sleep(0.05)
        job = await service.store.get(job_id)
        assert job is not None
    raise AssertionError(f"job {job_id} still {job.phase}")


def test_run_to_completion(database, tmp_path: Path) -> None:
    async def body(service: JobService) -> None:
        job = await service.create(KIND, None, {"X": ["1"]})
        assert job.phase == Phase.PENDING
        assert await service.job_results(job) == []
        await service.run(job)
        job = await service.wait(job, 10)
        assert await _until(service, job.job_id, ("COMPLETED",)) == "COMPLETED"
        job = await service.get(KIND, job.job_id, None)
        [result] = await service.job_results(job)
        assert service.results.path(result.location).read_bytes() == b"hello"
        assert job.start_time is not None and job.end_time is not None
        # a second RUN is harmless, ABORT of a finished job changes nothing
        assert (await service.run(job)).phase == Phase.COMPLETED
        assert (await service.abort(job)).phase == Phase.COMPLETED
        await service.delete(job)
        assert not service.results.path(result.location).exists()
        with pytest.raises(NotFoundError):
            await service.get(KIND, job.job_id, None)

    _run(database, tmp_path, body)


def test_terms_kept_at_acceptance_reach_the_runner(database, tmp_path: Path) -> None:
    """What a job is promised when accepted is stored with it and handed to whichever process
    runs it (``ctx.terms``); a job accepted without terms gets none."""
    promised = {"user_tables": {"max_rows": 3, "max_bytes": 1000, "max_columns": 5}}

    async def body(service: JobService) -> None:
        for terms, expected in ((promised, promised), (None, {})):
            job = await service.create(KIND, None, {"TERMS": ["1"]}, terms=terms)
            assert job.terms == (terms if terms is None else promised)
            await service.run(job)
            assert await _until(service, job.job_id, ("COMPLETED",)) == "COMPLETED"
            [result] = await service.job_results(await service.get(KIND, job.job_id, None))
            assert json.loads(service.results.path(result.location).read_bytes()) == expected

    _run(database, tmp_path, body)


def test_failure_and_abort(database, tmp_path: Path) -> None:
    async def body(service: JobService) -> None:
        bad = await service.create(KIND, None, {"FAIL": ["1"]})
        await service.run(bad)
        assert await _until(service, bad.job_id, ("ERROR",)) == "ERROR"
        bad = await service.get(KIND, bad.job_id, None)
        assert bad.error_type == "fatal" and "asked to fail" in (bad.error_message or "")

        slow = await service.create(KIND, None, {"SLEEP": ["1"]})
        await service.run(slow)
        await _until(service, slow.job_id, ("EXECUTING",))
        await asyncio.sleep(0.3)  # let the query start
        aborted = await service.abort(await service.get(KIND, slow.job_id, None))
        assert aborted.phase == Phase.ABORTED
        # the runner's query is cancelled: the thread finishes long before pg_sleep(30)
        for _ in range(100):
            if slow.job_id not in service.executor.running:  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("aborted job still running")
        assert (await service.get(KIND, slow.job_id, None)).phase == Phase.ABORTED

    _run(database, tmp_path, body)


def test_owner_checks_and_list(database, tmp_path: Path) -> None:
    async def body(service: JobService) -> None:
        mine = await service.create(KIND, "alice", {})
        anon = await service.create(KIND, None, {})
        with pytest.raises(NotFoundError):
            await service.get(KIND, mine.job_id, "bob")
        with pytest.raises(NotFoundError):
            await service.get(KIND, mine.job_id, None)
        assert (await service.get(KIND, anon.job_id, "bob")).job_id == anon.job_id
        assert [j.job_id for j in await service.list(KIND, "alice")] == [mine.job_id]
        assert await service.list(KIND, None) == []
        assert await service.list(KIND, "alice", phases=[Phase.COMPLETED]) == []
        assert len(await service.list(KIND, "alice", last=0)) == 0
        # PHASE=NOPE and EXECUTIONDURATION=ten are refused by the reader (tests/vo/test_dali_params.py)
        updated = await service.set_execution_duration(mine, 5)
        assert updated.execution_duration == 5
        # WAIT on a PENDING job with a timeout returns after it
        waited = await service.wait(updated, 0.2)
        assert waited.phase == Phase.PENDING

    _run(database, tmp_path, body, start=False)


def test_two_claimers_one_wins(database, tmp_path: Path) -> None:
    async def body(service: JobService) -> None:
        store = service.store
        job = await service.create(KIND, None, {})
        await store.transition(job.job_id, [Phase.PENDING], Phase.QUEUED)
        claims = await asyncio.gather(*(store.claim_next([KIND], f"w{i}") for i in range(4)))
        winners = [c for c in claims if c is not None]
        assert len(winners) == 1 and winners[0].phase == Phase.EXECUTING
        assert winners[0].runs == 1
        # abort races completion: exactly one compare-and-set succeeds
        done, aborted = await asyncio.gather(
            store.complete(job.job_id, []),
            store.transition(job.job_id, [Phase.EXECUTING], Phase.ABORTED, end=True),
        )
        assert (done is None) != (aborted is None)

    _run(database, tmp_path, body, start=False)


def test_shutdown_ends_running_jobs_in_error(database, tmp_path: Path) -> None:
    async def body(service: JobService) -> str:
        job = await service.create(KIND, None, {"SLEEP": ["1"]})
        await service.run(job)
        await _until(service, job.job_id, ("EXECUTING",))
        await asyncio.sleep(0.3)
        await service.executor.stop()
        return (await service.get(KIND, job.job_id, None)).phase

    assert _run(database, tmp_path, body) == Phase.ERROR


def _insert_executing(database, job_id: str, worker: str, heartbeat: str) -> None:
    with psycopg.connect(database.url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO vlkb.jobs (job_id, kind, phase, worker, heartbeat, start_time)"
            " VALUES (%s, %s, 'EXECUTING', %s, now() - %s::interval, now())",
            (job_id, KIND, worker, heartbeat),
        )


def test_reaper_ends_dead_workers_jobs(database, tmp_path: Path) -> None:
    # a pid that cannot be running here: the highest plus one
    dead_pid = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1
    _insert_executing(database, "reap-dead-pid", f"{socket.gethostname()}:{dead_pid}:abcd", "1 second")
    _insert_executing(database, "reap-stale", "elsewhere:1:abcd", "1 hour")
    _insert_executing(database, "keep-alive", f"elsewhere:{os.getpid()}:abcd", "1 second")

    async def body(service: JobService) -> None:
        reaped = await service.executor.reap()  # type: ignore[attr-defined]
        assert set(reaped) <= {"reap-dead-pid", "reap-stale"}
        # ended by this reaper, or already by the reaper of another process on the session's shared
        # database (its servers sweep every job): either way ERROR with the reason, never left EXECUTING
        for job_id in ("reap-dead-pid", "reap-stale"):
            job = await service.get(KIND, job_id, None)
            assert job.phase == Phase.ERROR and "died before it finished" in (job.error_message or ""), job_id
        assert (await service.get(KIND, "keep-alive", None)).phase == Phase.EXECUTING

    _run(database, tmp_path, body, start=False)


def test_queued_jobs_run_at_start(database, tmp_path: Path) -> None:
    async def body(service: JobService) -> None:
        job = await service.create(KIND, None, {})
        await service.store.transition(job.job_id, [Phase.PENDING], Phase.QUEUED)  # left by a stopped service
        await service.executor.start()
        assert await _until(service, job.job_id, ("COMPLETED",)) == "COMPLETED"

    _run(database, tmp_path, body, start=False)


def test_per_owner_limit_keeps_jobs_queued(database, tmp_path: Path) -> None:
    async def body(service: JobService) -> None:
        alice = [await service.create(KIND, "alice", {"SLEEP": ["0.6"]}) for _ in range(3)]
        bob = await service.create(KIND, "bob", {"SLEEP": ["0.6"]})
        for job in [*alice, bob]:
            await service.run(job)
        await _until(service, bob.job_id, ("EXECUTING",))
        phases = [(await service.get(KIND, j.job_id, "alice")).phase for j in alice]
        # two of alice's jobs run, the third waits QUEUED although a slot of the executor is free
        assert sorted(phases) == ["EXECUTING", "EXECUTING", "QUEUED"]
        for job in [*alice, bob]:
            assert await _until(service, job.job_id, ("COMPLETED",)) == "COMPLETED"
        runs = {(await service.get(KIND, j.job_id, j.owner)).runs for j in [*alice, bob]}
        assert runs == {1}

    _run(database, tmp_path, body, per_owner=2)


def test_execution_duration_watchdog(database, tmp_path: Path) -> None:
    # the runner ignores the timeout (no statement_timeout): the heartbeat's watchdog cancels it
    async def body(service: JobService) -> None:
        job = await service.create(KIND, None, {"SLEEP": ["1"]})
        await service.store.update(job.job_id, execution_duration=1)
        await service.run(job)
        assert await _until(service, job.job_id, ("ERROR",), timeout=15) == "ERROR"
        job = await service.get(KIND, job.job_id, None)
        assert "execution duration" in (job.error_message or "")
        assert not (service.results.root and (tmp_path / "results" / job.job_id).exists())

    _run(database, tmp_path, body, heartbeat=0.5)
