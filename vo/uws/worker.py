"""Running one claimed job, the same way under every executor: :class:`JobWorker`.

A ``JobWorker`` is what a process that runs jobs has: an id written on every job it claims,
the runners by kind, the job store and the results store. It claims QUEUED jobs (compare-and-set,
with the per-owner limit), runs the pure runner of the job's kind in a thread, and ends the job
COMPLETED or ERROR, again by compare-and-set, so an ABORT, a destruction or the reaper racing
the end has one winner and the loser's results are removed. Its periodic :meth:`watch` is the
heartbeat, and it notices what other processes did to its jobs (ABORT, DELETE, destruction) and
the execution duration running out. :meth:`reap` ends in ERROR the jobs of processes that are
gone: a half-run job is never re-run (exactly once), and never left EXECUTING. It also runs the
parts other jobs fan out (:mod:`vo.uws.parts`: :meth:`claim_part`, :meth:`run_part`), beats and
watches them like jobs, and the reaper queues again the parts of processes that are gone.

``LocalExecutor`` (``vo/uws/executor.py``) drives one inside the service; each ``vlkb worker``
(``vo/uws/celery_executor.py``) drives one per process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import psycopg
import structlog

from db import parts as parts_sql
from db.jobs import JobStore
from db.parts import PartRow
from vo.caller import Caller
from vo.errors import TransientError, VlkbError
from vo.uws.context import JobAborted, PartFunction, RunContext, Runner
from vo.uws.liveness import HEARTBEAT, STALE_BEATS, new_worker_id, worker_dead
from vo.uws.model import Job, Phase
from vo.uws.parts import run_claimed
from vo.uws.results import ResultStore

__all__ = ["HEARTBEAT", "JobWorker", "new_worker_id", "worker_dead"]

log = structlog.get_logger("vlkb.uws")

#: the watchdog cancels a job this long after its execution duration ran out (statement_timeout,
#: the first line of enforcement, should have stopped it already)
GRACE = 2.0


class JobWorker:
    """Claims, runs and ends jobs for one process; see the module docstring."""

    def __init__(self, store: JobStore, results: ResultStore, runners: Mapping[str, Runner], *, conninfo: str,
                 per_owner: int = 0, heartbeat: float = HEARTBEAT, worker_id: str | None = None,
                 parts: Mapping[str, PartFunction] | None = None) -> None:
        self.store = store
        self.results = results
        self.runners = dict(runners)
        #: the part functions by name (vo/uws/parts.py)
        self.parts = dict(parts or {})
        #: wakes idle processes when a runner queued parts (set by the executor; None: they poll)
        self.wake: Callable[[int], None] | None = None
        #: contexts of the parts running here, by (job id, part)
        self.running_parts: dict[tuple[str, int], RunContext] = {}
        self.conninfo = conninfo
        self.per_owner = per_owner
        self.heartbeat = heartbeat
        self.worker_id = worker_id or new_worker_id()
        #: contexts of the jobs running here, by job id
        self.running: dict[str, RunContext] = {}
        #: set when the process shuts down: no more claims, running jobs end in ERROR
        self.stopping = False

    @property
    def stale(self) -> timedelta:
        return timedelta(seconds=STALE_BEATS * self.heartbeat)

    async def claim(self) -> Job | None:
        """The next QUEUED job this process may run, now EXECUTING here; None if there is none."""
        if self.stopping or not self.runners:
            return None
        return await self.store.claim_next(list(self.runners), self.worker_id, per_owner=self.per_owner)

    def context(self, job: Job, *, part: bool = False) -> RunContext:
        """The context of ``job``'s runner (or, with ``part``, of one of its parts run here)."""
        timeout = float(job.execution_duration) if job.execution_duration > 0 else None
        ctx = RunContext(job.job_id, self.conninfo, self.results, timeout,
                         caller=Caller(job.owner, tuple(job.owner_groups)), base_url=job.base_url,
                         terms=job.terms or {},
                         worker_id=self.worker_id,
                         parts=self.parts, wake=self.wake, stale=STALE_BEATS * self.heartbeat)
        if not part:
            self.running[job.job_id] = ctx
        return ctx

    async def claim_part(self) -> PartRow | None:
        """The next queued part of an EXECUTING job this process can run, now running here."""
        if self.stopping or not self.parts:
            return None
        return await parts_sql.claim(self.store.pool, self.worker_id, list(self.parts))

    async def run_part(self, row: PartRow) -> None:
        """Run a claimed part in a thread and record its end; never raises."""
        key = (row.job_id, row.part)
        try:
            job = await self.store.get(row.job_id)
            if job is None or job.phase != Phase.EXECUTING:
                await parts_sql.requeue(self.store.pool, row)  # ended since the claim: give the claim up
                return
            ctx = self.context(job, part=True)
            self.running_parts[key] = ctx
            await asyncio.to_thread(self._run_part, row, ctx)
        except JobAborted:
            log.info("job part stopped", job_id=row.job_id, part=row.part)
        except Exception as exc:
            log.error("job part bookkeeping failed", job_id=row.job_id, part=row.part, exc_info=exc)
        finally:
            self.running_parts.pop(key, None)

    def _run_part(self, row: PartRow, ctx: RunContext) -> None:
        with psycopg.connect(self.conninfo, autocommit=True, application_name="vlkb-parts") as conn:
            run_claimed(conn, row, self.parts[row.name], ctx)

    def cancel(self, job_id: str) -> bool:
        """Cancel ``job_id`` if it runs here (from the event loop; the cancel itself may block)."""
        ctx = self.running.get(job_id)
        if ctx is None:
            return False
        ctx.cancel()
        return True

    async def execute(self, job: Job, ctx: RunContext | None = None) -> None:
        """Run a claimed job to its end phase; never raises."""
        ctx = ctx or self.context(job)
        bound = log.bind(job_id=job.job_id, owner=job.owner, kind=job.kind, worker=self.worker_id)
        bound.info("job started")
        try:
            await self._execute(job, ctx, bound)
        except Exception as exc:
            bound.error("job bookkeeping failed", exc_info=exc)
        finally:
            self.running.pop(job.job_id, None)

    async def _fail(self, job: Job, bound: structlog.typing.FilteringBoundLogger, kind: str, message: str,
                    code: int | None = None) -> None:
        done = await self.store.transition(job.job_id, [Phase.EXECUTING], Phase.ERROR, end=True, error_type=kind,
                                           error_message=message, error_code=code)
        if done is None:  # aborted, deleted or reaped meanwhile: that end stands, drop our output
            await asyncio.to_thread(self.results.delete, job.job_id)
        else:
            # parts that ended before the runner failed left outputs nobody reads; no part can end
            # now that the job is not EXECUTING (vo/uws/parts.py)
            for location in await parts_sql.outputs(self.store.pool, job.job_id):
                await asyncio.to_thread(self.results.remove, location)

    async def _stopped(self, job: Job, ctx: RunContext, bound: structlog.typing.FilteringBoundLogger) -> None:
        """The runner stopped on a cancel: the execution duration ran out, our shutdown, or an
        ABORT/DELETE (then the job is ABORTED or gone already)."""
        await asyncio.to_thread(self.results.delete, job.job_id)
        if ctx.expired:
            bound.info("job ran out of time")
            await self._fail(job, bound, "fatal", f"UsageError: the job ran longer than its execution duration "
                             f"({ctx.timeout:g} s) and was cancelled", 400)
        elif self.stopping:
            bound.info("job stopped by shutdown")
            await self._fail(job, bound, "transient", "the process running this job stopped while it ran; "
                             "submit the job again")
        else:
            bound.info("job stopped by abort")
            # the job is ABORTED or gone, so this changes nothing; were it still EXECUTING, it
            # must not stay so under a live heartbeat
            await self._fail(job, bound, "transient", "the job was cancelled while it ran; submit it again")

    async def _execute(self, job: Job, ctx: RunContext, bound: structlog.typing.FilteringBoundLogger) -> None:
        try:
            results = await asyncio.to_thread(self.runners[job.kind], job.parameters, ctx)
            ctx.check()
        except JobAborted:
            await self._stopped(job, ctx, bound)
            return
        except VlkbError as exc:
            if ctx.cancelled:
                await self._stopped(job, ctx, bound)
                return
            kind = "transient" if isinstance(exc, TransientError) else "fatal"
            bound.info("job failed", error=exc.message)
            await self._fail(job, bound, kind, f"{exc.code}: {exc.message}", exc.status)
            return
        except Exception as exc:
            if ctx.cancelled:
                await self._stopped(job, ctx, bound)
                return
            bound.error("job crashed", exc_info=exc)
            await self._fail(job, bound, "fatal", "Error: internal failure of the service while running the job; "
                             "it has been logged", 500)
            return
        if await self.store.complete(job.job_id, results) is None:
            # aborted, deleted or reaped meanwhile: that end stands, drop what was written
            await asyncio.to_thread(self.results.delete, job.job_id)
            bound.info("job result dropped", reason="no longer executing")
        else:
            bound.info("job completed")

    async def watch(self) -> None:
        """The heartbeat: mark our jobs alive, cancel those another process ended (ABORT,
        DELETE, destruction) and those past their execution duration."""
        await self.store.beat(self.worker_id)
        if not self.running and not self.running_parts:
            return
        # a snapshot: jobs claimed while the phases are read are not in the answer
        watched = dict(self.running)
        parts = dict(self.running_parts)
        phases = await self.store.phases(list(watched) + [job_id for job_id, _ in parts])
        for (job_id, _), ctx in parts.items():
            if phases.get(job_id) != Phase.EXECUTING:
                await asyncio.to_thread(ctx.cancel)
        now = time.monotonic()
        for job_id, ctx in watched.items():
            if phases.get(job_id) != Phase.EXECUTING:
                await asyncio.to_thread(ctx.cancel)
            elif ctx.deadline is not None and now > ctx.deadline + GRACE:
                await asyncio.to_thread(ctx.cancel, expired=True)

    async def reap(self) -> list[str]:
        """End in ERROR the EXECUTING jobs whose process is gone, and queue again the parts whose
        process is gone (:mod:`vo.uws.parts`); the ids of the jobs ended."""
        now = datetime.now(UTC)
        for row in await parts_sql.running(self.store.pool):
            if worker_dead(row, self.worker_id, now, self.stale) and await parts_sql.requeue(self.store.pool, row):
                log.warning("job part queued again", job_id=row.job_id, part=row.part, worker=row.worker)
        reaped = []
        for job in await self.store.executing():
            if job.job_id in self.running or not worker_dead(job, self.worker_id, now, self.stale):
                continue
            done = await self.store.transition(
                job.job_id, [Phase.EXECUTING], Phase.ERROR, end=True, error_type="transient",
                error_message=f"the process running this job ({job.worker}) died before it finished; "
                              "submit the job again",
            )
            if done is not None:
                await asyncio.to_thread(self.results.delete, job.job_id)
                reaped.append(job.job_id)
                log.warning("job reaped", job_id=job.job_id, worker=job.worker)
        return reaped

    async def destroy_expired(self) -> list[str]:
        """Delete the jobs past their destruction time and their results (UWS 1.1 section 2.2.3.3)."""
        gone = await self.store.expired()
        for job_id in gone:
            self.cancel(job_id)
            await asyncio.to_thread(self.results.delete, job_id)
            log.info("job destroyed", job_id=job_id)
        return gone

    async def drain(self) -> int:
        """Claim and run jobs and parts one after another until none is left for us; how many ran."""
        ran = 0
        while True:
            if (job := await self.claim()) is not None:
                await self.execute(job)
            elif (part := await self.claim_part()) is not None:
                await self.run_part(part)
            else:
                return ran
            ran += 1
