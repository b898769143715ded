"""Running one claimed job, the same way under every executor: :class:`JobWorker`.

A ``JobWorker`` is what a process that runs jobs has: an id written on every job it claims,
the runners by kind, the job store and the results store. It claims QUEUED jobs (compare-and-set,
with the per-owner limit), runs the pure runner of the job's kind in a thread, and ends the job
COMPLETED or ERROR, again by compare-and-set, so an ABORT, a destruction or the reaper racing
the end has one winner and the loser's results are removed. Its periodic :meth:`watch` is the
heartbeat, and it notices what other processes did to its jobs (ABORT, DELETE, destruction) and
the execution duration running out. :meth:`reap` ends in ERROR the jobs of processes that are
gone: a half-run job is never re-run (exactly once), and never left EXECUTING.

``LocalExecutor`` (``vo/uws/executor.py``) drives one inside the service; each ``vlkb worker``
(``vo/uws/celery_executor.py``) drives one per process.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import structlog

from db.jobs import JobStore
from vo.caller import Caller
from vo.errors import TransientError, VlkbError
from vo.uws.context import JobAborted, RunContext, Runner
from vo.uws.model import Job, Phase
from vo.uws.results import ResultStore

__all__ = ["JobWorker", "new_worker_id", "worker_dead"]

log = structlog.get_logger("vlkb.uws")

#: seconds between heartbeats (and watches) of a process running jobs
HEARTBEAT = 10.0
#: a job whose heartbeat is older than this many heartbeats is taken for dead
STALE_BEATS = 4
#: the watchdog cancels a job this long after its execution duration ran out (statement_timeout,
#: the first line of enforcement, should have stopped it already)
GRACE = 2.0


def new_worker_id() -> str:
    """``host:pid:random``: unique per process start, and tells the reaper where to look."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_STALE = timedelta(seconds=STALE_BEATS * HEARTBEAT)


def worker_dead(job: Job, me: str, now: datetime, stale: timedelta = _STALE) -> bool:
    """Whether the process that claimed ``job`` is gone: no worker, a stale heartbeat, or a
    process of this host that no longer runs (or is us, restarted under a new id)."""
    if not job.worker:
        return True
    if job.worker == me:
        return False
    if job.heartbeat is None or now - job.heartbeat > stale:
        return True
    host, _, rest = job.worker.partition(":")
    pid_text = rest.partition(":")[0]
    if host == socket.gethostname() and pid_text.isdigit():
        pid = int(pid_text)
        return pid == os.getpid() or not _pid_alive(pid)
    return False


class JobWorker:
    """Claims, runs and ends jobs for one process; see the module docstring."""

    def __init__(self, store: JobStore, results: ResultStore, runners: Mapping[str, Runner], *, conninfo: str,
                 per_owner: int = 0, heartbeat: float = HEARTBEAT, worker_id: str | None = None) -> None:
        self.store = store
        self.results = results
        self.runners = dict(runners)
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

    def context(self, job: Job) -> RunContext:
        timeout = float(job.execution_duration) if job.execution_duration > 0 else None
        ctx = RunContext(job.job_id, self.conninfo, self.results, timeout,
                         caller=Caller(job.owner, tuple(job.owner_groups)))
        self.running[job.job_id] = ctx
        return ctx

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
        if not self.running:
            return
        # a snapshot: jobs claimed while the phases are read are not in the answer
        watched = dict(self.running)
        phases = await self.store.phases(list(watched))
        now = time.monotonic()
        for job_id, ctx in watched.items():
            if phases.get(job_id) != Phase.EXECUTING:
                await asyncio.to_thread(ctx.cancel)
            elif ctx.deadline is not None and now > ctx.deadline + GRACE:
                await asyncio.to_thread(ctx.cancel, expired=True)

    async def reap(self) -> list[str]:
        """End in ERROR the EXECUTING jobs whose process is gone; their ids."""
        now = datetime.now(UTC)
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
        """Claim and run jobs one after another until none is left for us; how many ran."""
        ran = 0
        while (job := await self.claim()) is not None:
            await self.execute(job)
            ran += 1
        return ran
