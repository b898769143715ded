"""UWS 1.1 rules: job creation, listing, phase transitions, destruction, WAIT and owner checks.

:class:`UwsParams` is the one reader of the control parameters (section 2.2: PHASE, ACTION, WAIT,
LAST, AFTER, DESTRUCTION, EXECUTIONDURATION, RUNID) with the rules of :mod:`vo.dali`; only the job
list's PHASE filter repeats (section 2.2.1.1: the union of those phases), and phase names and
ACTION ignore case. PHASE, ACTION and WAIT never become job parameters. The service takes the
values read (owner, parameters) and returns records; SQL is in ``db/jobs.py`` and execution in
``vo/uws/executor.py``. Jobs belong to their owner: another
caller gets 404 for them. Anonymous jobs (owner None) are reachable by whoever has the URL
and are listed to no one (UWS 1.1 section 2.2.1.1 lets a service filter the list by owner).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import secrets
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from db.jobs import JobStore
from vo.dali import DaliParams
from vo.errors import NotFoundError, UsageError
from vo.shapes import parse_number
from vo.uws.executor import Executor
from vo.uws.model import ACTIVE, Job, JobResult, Phase
from vo.uws.phase_watch import PhaseWatch
from vo.uws.results import ResultStore

__all__ = ["CONTROL", "JobService", "UwsParams", "parse_time"]

log = structlog.get_logger("vlkb.uws")

#: the longest WAIT honoured, seconds (UWS 1.1 section 2.2.1.1 lets the service cap it)
MAX_WAIT = 60.0
#: LAST above this lists every job anyway; capped so the LIMIT stays in PostgreSQL's bigint
_MAX_LAST = 2**31 - 1
#: EXECUTIONDURATION above this (68 years) is unlimited in practice; capped to the integer column
_MAX_DURATION = 2**31 - 1
_POLL = 0.1
#: while notified, the row is read again at least this often anyway (seconds)
_RECHECK = 10.0
#: control parameters of the job list and job resources, never stored with the job
CONTROL = frozenset({"PHASE", "ACTION", "WAIT"})


def parse_time(text: str, name: str) -> datetime:
    """An ISO 8601 time; naive times are UTC."""
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{name}: not an ISO 8601 time: {text!r}") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _phase(text: str) -> Phase:
    if text.upper() not in Phase.__members__:
        raise UsageError(f"PHASE: unknown phase {text!r}")
    return Phase(text.upper())


class UwsParams(DaliParams):
    """The control parameters of one UWS request."""

    def job_parameters(self) -> dict[str, list[str]]:
        """Every parameter but the control ones, values as sent: what a job keeps."""
        return {k: v for k, v in self.raw.items() if k not in CONTROL}

    def phases(self) -> list[Phase]:
        """The job list's PHASE filter (repeatable)."""
        return [_phase(v) for v in self.repeated("PHASE")]

    def after(self) -> datetime | None:
        """The job list's AFTER filter: jobs created after this time."""
        text = self.single("AFTER")
        return None if text is None else parse_time(text, "AFTER")

    def last(self) -> int | None:
        """The job list's LAST filter: at most this many of the most recent jobs."""
        return self.natural("LAST")

    def wait(self) -> tuple[float, Phase | None] | None:
        """WAIT seconds (-1 or +Inf: the longest wait) and the PHASE it waits in; None when absent."""
        text = self.single("WAIT")
        if text is None:
            return None
        phase = self.single("PHASE")
        return parse_number(text, "WAIT", infinite=True), None if phase is None else _phase(phase)

    def command(self, *allowed: str) -> str | None:
        """A phase change (PHASE=RUN or ABORT, upper-cased) among ``allowed``; None when absent."""
        value = self.single("PHASE")
        if value is not None and value.upper() not in allowed:
            raise UsageError(f"PHASE: expected {' or '.join(allowed)}, got {value!r}")
        return None if value is None else value.upper()

    def action(self) -> str | None:
        """ACTION: only DELETE (section 2.2.3); None when absent."""
        value = self.single("ACTION")
        if value is not None and value.upper() != "DELETE":
            raise UsageError(f"ACTION: only DELETE is supported, got {value!r}")
        return None if value is None else value.upper()

    def execution_duration(self) -> int:
        """EXECUTIONDURATION, seconds (0: unlimited)."""
        seconds = self.natural("EXECUTIONDURATION")
        if seconds is None:
            raise UsageError("EXECUTIONDURATION: missing; give the run time allowed, in seconds")
        return seconds

    def destruction(self) -> datetime:
        """DESTRUCTION: when the job may be destroyed."""
        return parse_time(self.required("DESTRUCTION", "give an ISO 8601 time"), "DESTRUCTION")


class JobService:
    """UWS jobs of every kind over one store, executor and results store."""

    def __init__(self, store: JobStore, executor: Executor, results: ResultStore, *,
                 execution_duration: int, destruction_days: float, watch: PhaseWatch | None = None) -> None:
        self.store = store
        self.executor = executor
        self.results = results
        #: wakes WAIT when a job changes phase; None: WAIT polls the job's row
        self.watch = watch
        self.execution_duration = execution_duration
        self.destruction = timedelta(days=destruction_days)

    async def create(self, kind: str, owner: str | None, parameters: dict[str, list[str]], *,
                     run_id: str | None = None, groups: Sequence[str] = (), base_url: str | None = None,
                     terms: Mapping[str, Any] | None = None) -> Job:
        """A new PENDING job of ``kind`` with ``parameters`` (validated by the caller).

        ``groups`` are the owner's groups now: the job reads what they allow, whenever it runs.
        ``base_url``: the public base URL of the service creating it, which the URLs in its results
        start with wherever it runs. ``terms``: what the accepting process promises the job (its
        runner reads them as ``ctx.terms``), so a process configured otherwise that claims it
        holds it to the same.
        """
        job = await self.store.create(
            secrets.token_hex(8), kind, owner=owner, owner_groups=groups, run_id=run_id, parameters=parameters,
            execution_duration=self.execution_duration, destruction=datetime.now(UTC) + self.destruction,
            base_url=base_url, terms=terms,
        )
        log.info("job created", job_id=job.job_id, kind=kind, owner=owner)
        return job

    async def list(self, kind: str, owner: str | None, *, phases: Sequence[Phase] = (),
                   after: datetime | None = None, last: int | None = None) -> builtins.list[Job]:
        """``owner``'s jobs (UWS 1.1 section 2.2.1.1 filters PHASE, AFTER, LAST); none for anonymous."""
        if owner is None:
            return []
        if last is not None:
            last = min(last, _MAX_LAST)
        if not phases:
            # ARCHIVED jobs are left out of the list unless asked for (section 2.2.1.1)
            phases = [p for p in Phase if p is not Phase.ARCHIVED]
        return await self.store.list(kind, owner, phases=[str(p) for p in phases], after=after, last=last)

    async def get(self, kind: str, job_id: str, owner: str | None) -> Job:
        """The job, if it is of ``kind`` and ``owner`` may see it; else NotFoundError."""
        job = await self.store.get(job_id)
        if job is None or job.kind != kind or (job.owner is not None and job.owner != owner):
            raise NotFoundError(f"no job {job_id!r}")
        return job

    async def job_results(self, job: Job) -> builtins.list[JobResult]:
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

    async def set_destruction(self, job: Job, when: datetime) -> Job:
        # the service keeps jobs no longer than its own limit (UWS 1.1 section 2.2.3.3)
        when = min(when, datetime.now(UTC) + self.destruction)
        return await self.store.update(job.job_id, destruction=when) or job

    async def set_execution_duration(self, job: Job, seconds: int) -> Job:
        # 0 means unlimited in UWS; the service's limit still applies
        if self.execution_duration > 0:
            seconds = self.execution_duration if seconds == 0 else min(seconds, self.execution_duration)
        seconds = min(seconds, _MAX_DURATION)
        return await self.store.update(job.job_id, execution_duration=seconds) or job

    async def set_parameters(self, job: Job, updates: dict[str, builtins.list[str]]) -> Job:
        """POST to /parameters: merge parameters of a PENDING job (section 2.2.3.6)."""
        if job.phase != Phase.PENDING:
            raise UsageError(f"job {job.job_id} is {job.phase}: parameters can change only while PENDING")
        merged = {**job.parameters, **updates}
        return await self.store.update_parameters(job.job_id, merged) or job

    async def wait(self, job: Job, timeout: float, phase: Phase | None = None) -> Job:
        """WAIT (UWS 1.1 section 2.2.1.1): block while the job is in an active phase (or in
        ``phase`` when given) and unchanged, at most ``timeout`` seconds (capped, -1: the cap).

        Woken by the job's change of phase announced by the database (:mod:`vo.uws.phase_watch`),
        so the answer leaves as soon as the job moves; the row is polled only while nothing listens.
        """
        limit = MAX_WAIT if timeout < 0 else min(timeout, MAX_WAIT)
        start_phase = job.phase
        if start_phase not in ACTIVE or (phase is not None and phase != start_phase):
            return job
        deadline = time.monotonic() + limit
        with self.watch.watching(job.job_id) if self.watch else contextlib.nullcontext() as changed:
            # short jobs end within milliseconds: poll fast at first, then back off to _POLL
            delay = 0.005
            while True:
                # read after registering: a change made since the caller's read is not missed
                current = await self.store.get(job.job_id)
                if current is None:
                    raise NotFoundError(f"no job {job.job_id!r}")
                left = deadline - time.monotonic()
                if current.phase != start_phase or left <= 0:
                    return current
                if changed is not None and self.watch is not None and self.watch.listening:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait(), timeout=min(left, _RECHECK))
                    changed.clear()
                else:
                    await asyncio.sleep(min(delay, left))
                    delay = min(delay * 2, _POLL)

    async def close(self) -> None:
        """Stop listening for phase changes (shutdown; the executor is stopped on its own)."""
        if self.watch is not None:
            await self.watch.close()
