"""UWS 1.1 rules: job creation, listing, phase transitions, destruction, WAIT and owner checks.

The service takes plain values (owner, parameters) and returns records; SQL is in
``db/jobs.py`` and execution in ``vo/uws/executor.py``. Jobs belong to their owner: another
caller gets 404 for them. Anonymous jobs (owner None) are reachable by whoever has the URL
and are listed to no one (UWS 1.1 section 2.2.1.1 lets a service filter the list by owner).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import structlog

from db.jobs import JobStore
from vo.errors import NotFoundError, UsageError
from vo.uws.executor import Executor
from vo.uws.model import ACTIVE, Job, JobResult, Phase
from vo.uws.results import ResultStore

__all__ = ["JobService", "parse_time"]

log = structlog.get_logger("vlkb.uws")

#: the longest WAIT honoured, seconds (UWS 1.1 section 2.2.1.1 lets the service cap it)
MAX_WAIT = 60.0
#: LAST above this lists every job anyway; capped so the LIMIT stays in PostgreSQL's bigint
_MAX_LAST = 2**31 - 1
#: EXECUTIONDURATION above this (68 years) is unlimited in practice; capped to the integer column
_MAX_DURATION = 2**31 - 1
_POLL = 0.1


def parse_time(text: str, name: str) -> datetime:
    """An ISO 8601 time; naive times are UTC."""
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{name}: not an ISO 8601 time: {text!r}") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


class JobService:
    """UWS jobs of every kind over one store, executor and results store."""

    def __init__(self, store: JobStore, executor: Executor, results: ResultStore, *,
                 execution_duration: int, destruction_days: float) -> None:
        self.store = store
        self.executor = executor
        self.results = results
        self.execution_duration = execution_duration
        self.destruction = timedelta(days=destruction_days)

    async def create(self, kind: str, owner: str | None, parameters: dict[str, list[str]], *,
                     run_id: str | None = None, groups: Sequence[str] = ()) -> Job:
        """A new PENDING job of ``kind`` with ``parameters`` (validated by the caller).

        ``groups`` are the owner's groups now: the job reads what they allow, whenever it runs.
        """
        job = await self.store.create(
            secrets.token_hex(8), kind, owner=owner, owner_groups=groups, run_id=run_id, parameters=parameters,
            execution_duration=self.execution_duration, destruction=datetime.now(UTC) + self.destruction,
        )
        log.info("job created", job_id=job.job_id, kind=kind, owner=owner)
        return job

    async def list(self, kind: str, owner: str | None, *, phases: Sequence[str] = (),
                   after: datetime | None = None, last: int | None = None) -> list[Job]:
        """``owner``'s jobs (UWS 1.1 section 2.2.1.1 filters PHASE, AFTER, LAST); none for anonymous."""
        for p in phases:
            if p not in Phase.__members__:
                raise UsageError(f"PHASE: unknown phase {p!r}")
        if last is not None and last < 0:
            raise UsageError(f"LAST: must not be negative, got {last}")
        if owner is None:
            return []
        if last is not None:
            last = min(last, _MAX_LAST)
        if not phases:
            # ARCHIVED jobs are left out of the list unless asked for (section 2.2.1.1)
            phases = [p.value for p in Phase if p is not Phase.ARCHIVED]
        return await self.store.list(kind, owner, phases=phases, after=after, last=last)

    async def get(self, kind: str, job_id: str, owner: str | None) -> Job:
        """The job, if it is of ``kind`` and ``owner`` may see it; else NotFoundError."""
        job = await self.store.get(job_id)
        if job is None or job.kind != kind or (job.owner is not None and job.owner != owner):
            raise NotFoundError(f"no job {job_id!r}")
        return job

    async def job_results(self, job: Job) -> list[JobResult]:
        return await self.store.results(job.job_id) if job.phase == Phase.COMPLETED else []

    async def result(self, job: Job, result_id: str) -> JobResult:
        for r in await self.job_results(job):
            if r.result_id == result_id:
                return r
        raise NotFoundError(f"job {job.job_id} has no result {result_id!r}")

    async def run(self, job: Job) -> Job:
        """PHASE=RUN: PENDING → QUEUED, and tell the executor. A job already past PENDING is left
        as it is (a repeated RUN is harmless)."""
        queued = await self.store.transition(job.job_id, [Phase.PENDING], Phase.QUEUED)
        if queued is None:
            if job.phase in (Phase.HELD, Phase.SUSPENDED):
                raise UsageError(f"job {job.job_id} is {job.phase} and cannot be run")
            return await self.store.get(job.job_id) or job
        await self.executor.submit(queued.job_id)
        return queued

    async def abort(self, job: Job) -> Job:
        """PHASE=ABORT: an unfinished job ends ABORTED and its running work is cancelled."""
        aborted = await self.store.transition(
            job.job_id, [Phase.PENDING, Phase.QUEUED, Phase.EXECUTING, Phase.HELD, Phase.SUSPENDED],
            Phase.ABORTED, end=True,
        )
        if aborted is None:
            return await self.store.get(job.job_id) or job
        if job.phase == Phase.EXECUTING or aborted.worker is not None:
            await self.executor.cancel(job.job_id)
        log.info("job aborted", job_id=job.job_id)
        return aborted

    async def delete(self, job: Job) -> None:
        """Abort if running, then remove the job and its results."""
        await self.abort(job)
        await self.store.delete(job.job_id)
        await asyncio.to_thread(self.results.delete, job.job_id)
        log.info("job deleted", job_id=job.job_id)

    async def set_destruction(self, job: Job, text: str) -> Job:
        when = parse_time(text, "DESTRUCTION")
        # the service keeps jobs no longer than its own limit (UWS 1.1 section 2.2.3.3)
        when = min(when, datetime.now(UTC) + self.destruction)
        return await self.store.update(job.job_id, destruction=when) or job

    async def set_execution_duration(self, job: Job, text: str) -> Job:
        try:
            seconds = int(text.strip())
        except ValueError:
            raise UsageError(f"EXECUTIONDURATION: not an integer: {text!r}") from None
        if seconds < 0:
            raise UsageError(f"EXECUTIONDURATION: must not be negative, got {seconds}")
        # 0 means unlimited in UWS; the service's limit still applies
        if self.execution_duration > 0:
            seconds = self.execution_duration if seconds == 0 else min(seconds, self.execution_duration)
        seconds = min(seconds, _MAX_DURATION)
        return await self.store.update(job.job_id, execution_duration=seconds) or job

    async def set_parameters(self, job: Job, updates: dict[str, list[str]]) -> Job:
        """POST to /parameters: merge parameters of a PENDING job (section 2.2.3.6)."""
        if job.phase != Phase.PENDING:
            raise UsageError(f"job {job.job_id} is {job.phase}: parameters can change only while PENDING")
        merged = {**job.parameters, **updates}
        return await self.store.update_parameters(job.job_id, merged) or job

    async def wait(self, job: Job, timeout: float, phase: str | None = None) -> Job:
        """WAIT (UWS 1.1 section 2.2.1.1): block while the job is in an active phase (or in
        ``phase`` when given) and unchanged, at most ``timeout`` seconds (capped, -1: the cap)."""
        if phase is not None and phase not in Phase.__members__:
            raise UsageError(f"PHASE: unknown phase {phase!r}")
        limit = MAX_WAIT if timeout < 0 else min(timeout, MAX_WAIT)
        start_phase = job.phase
        if start_phase not in ACTIVE or (phase is not None and phase != start_phase):
            return job
        deadline = time.monotonic() + limit
        current = job
        # short jobs end within milliseconds: poll fast at first, then back off to _POLL
        delay = 0.005
        while time.monotonic() < deadline:
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, _POLL)
            fresh = await self.store.get(job.job_id)
            if fresh is None:
                raise NotFoundError(f"no job {job.job_id!r}")
            current = fresh
            if current.phase != start_phase:
                break
        return current
