"""Job execution: the :class:`Executor` protocol and :class:`LocalExecutor`, a worker pool in
the service process (ARCHITECTURE decision 4; a Celery executor comes later).

The executor claims QUEUED jobs with a compare-and-set in ``db/jobs.py`` (so each runs once,
however many processes poll), runs the pure runner of the job's kind in a thread, and ends the
job COMPLETED or ERROR, again by compare-and-set, so an ABORT racing the end has one winner.
At start a reaper ends in ERROR the jobs left EXECUTING by a process that is gone (nothing is
re-queued: a half-run job may have had effects), and QUEUED jobs found then are run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import psycopg
import structlog

from db.jobs import JobStore, ResultRow
from vo.errors import TransientError, VlkbError
from vo.uws.model import Job, Phase
from vo.uws.results import ResultStore

__all__ = ["Executor", "JobAborted", "LocalExecutor", "RunContext", "Runner", "worker_dead"]

log = structlog.get_logger("vlkb.uws")

HEARTBEAT = 30.0
#: a job whose heartbeat is older than this is taken for dead
STALE = timedelta(seconds=4 * HEARTBEAT)


class JobAborted(Exception):
    """The job was aborted while it ran; its partial results are dropped."""


@dataclass
class RunContext:
    """What a runner gets besides its parameters: where to write, which database, how long."""

    job_id: str
    conninfo: str
    results: ResultStore
    #: seconds (statement_timeout); None: unlimited
    timeout: float | None
    #: the job owner's groups: what the job may read (pass them to every query and dataset lookup)
    groups: tuple[str, ...] = ()
    _conns: list[psycopg.Connection] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    cancelled: bool = False

    def connect(self) -> psycopg.Connection:
        """A database connection that ABORT can cancel (close it when done)."""
        conn = psycopg.connect(self.conninfo, application_name=f"vlkb-job-{self.job_id}")
        with self._lock:
            self._conns.append(conn)
            if self.cancelled:
                conn.close()
                raise JobAborted(self.job_id)
        return conn

    def cancel(self) -> None:
        """Cancel the queries running for this job (from any thread)."""
        with self._lock:
            self.cancelled = True
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.cancel_safe(timeout=5)

    def check(self) -> None:
        if self.cancelled:
            raise JobAborted(self.job_id)


Runner = Callable[[Mapping[str, list[str]], RunContext], Sequence[ResultRow]]


class Executor(Protocol):
    """How jobs get run: the service calls these, never the runners directly."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def submit(self, job_id: str) -> None: ...
    async def cancel(self, job_id: str) -> None: ...


def _new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_dead(job: Job, me: str, now: datetime) -> bool:
    """Whether the process that claimed ``job`` is gone: no worker, a stale heartbeat, or a
    process of this host that no longer runs (or is us, restarted under a new id)."""
    if not job.worker:
        return True
    if job.worker == me:
        return False
    if job.heartbeat is None or now - job.heartbeat > STALE:
        return True
    host, _, rest = job.worker.partition(":")
    pid_text = rest.partition(":")[0]
    if host == socket.gethostname() and pid_text.isdigit():
        pid = int(pid_text)
        return pid == os.getpid() or not _pid_alive(pid)
    return False


class LocalExecutor:
    """Runs jobs in threads of the service process, at most ``concurrency`` at a time."""

    def __init__(self, store: JobStore, results: ResultStore, runners: Mapping[str, Runner], *,
                 conninfo: str, concurrency: int = 4, poll: float = 2.0) -> None:
        self.store = store
        self.results = results
        self.runners = dict(runners)
        self.conninfo = conninfo
        self.concurrency = concurrency
        self.poll = poll
        self.worker = _new_worker_id()
        self._running: dict[str, tuple[asyncio.Task[None], RunContext]] = {}
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._last_sweep = 0.0
        self._stopping = False

    async def start(self) -> None:
        self._loop_task = asyncio.create_task(self._dispatch(), name="vlkb-uws-dispatch")

    async def stop(self) -> None:
        self._stopping = True
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        for _, ctx in list(self._running.values()):
            await asyncio.to_thread(ctx.cancel)
        tasks = [t for t, _ in self._running.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=10)

    def submit(self, job_id: str) -> None:
        self._wake.set()

    async def cancel(self, job_id: str) -> None:
        entry = self._running.get(job_id)
        if entry is not None:
            await asyncio.to_thread(entry[1].cancel)

    async def reap(self) -> list[str]:
        """End in ERROR the EXECUTING jobs whose process is gone; their ids."""
        now = datetime.now(UTC)
        reaped = []
        for job in await self.store.executing():
            if job.job_id in self._running or not worker_dead(job, self.worker, now):
                continue
            done = await self.store.transition(
                job.job_id, [Phase.EXECUTING], Phase.ERROR, end=True, error_type="transient",
                error_message=f"the service process running this job ({job.worker}) stopped before it "
                              "finished; submit the job again",
            )
            if done is not None:
                reaped.append(job.job_id)
                log.warning("job reaped", job_id=job.job_id, worker=job.worker)
        return reaped

    async def _sweep(self) -> None:
        await self.store.beat(self.worker)
        await self.reap()
        for job_id in await self.store.expired():
            await self.cancel(job_id)
            await asyncio.to_thread(self.results.delete, job_id)
            log.info("job destroyed", job_id=job_id)

    async def _dispatch(self) -> None:
        while True:
            try:
                if time.monotonic() - self._last_sweep > HEARTBEAT:
                    await self._sweep()
                    self._last_sweep = time.monotonic()
                while len(self._running) < self.concurrency:
                    job = await self.store.claim_next(list(self.runners), self.worker)
                    if job is None:
                        break
                    self._launch(job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be down; try again at the next poll
                log.warning("job dispatch failed", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll)
            self._wake.clear()

    def _launch(self, job: Job) -> None:
        timeout = float(job.execution_duration) if job.execution_duration > 0 else None
        ctx = RunContext(job.job_id, self.conninfo, self.results, timeout, tuple(job.owner_groups))
        task = asyncio.create_task(self._execute(job, ctx), name=f"vlkb-job-{job.job_id}")
        self._running[job.job_id] = (task, ctx)

    async def _cancelled(self, job: Job, bound: structlog.typing.FilteringBoundLogger) -> None:
        """The runner stopped on a cancel: an ABORT (the job is ABORTED already) or our shutdown."""
        await asyncio.to_thread(self.results.delete, job.job_id)
        if self._stopping:
            await self.store.transition(
                job.job_id, [Phase.EXECUTING], Phase.ERROR, end=True, error_type="transient",
                error_message="the service stopped while this job ran; submit the job again",
            )
            bound.info("job stopped by shutdown")
        else:
            bound.info("job stopped by abort")

    async def _execute(self, job: Job, ctx: RunContext) -> None:
        bound = log.bind(job_id=job.job_id, owner=job.owner, kind=job.kind)
        bound.info("job started")
        try:
            try:
                results = await asyncio.to_thread(self.runners[job.kind], job.parameters, ctx)
                ctx.check()
            except JobAborted:
                await self._cancelled(job, bound)
                return
            except VlkbError as exc:
                if ctx.cancelled:
                    await self._cancelled(job, bound)
                    return
                kind = "transient" if isinstance(exc, TransientError) else "fatal"
                bound.info("job failed", error=exc.message)
                await self.store.transition(job.job_id, [Phase.EXECUTING], Phase.ERROR, end=True,
                                            error_type=kind, error_message=f"{exc.code}: {exc.message}",
                                            error_code=exc.status)
                return
            except Exception as exc:
                bound.error("job crashed", exc_info=exc)
                await self.store.transition(job.job_id, [Phase.EXECUTING], Phase.ERROR, end=True,
                                            error_type="fatal", error_message="Error: internal failure of "
                                            "the service while running the job; it has been logged",
                                            error_code=500)
                return
            if await self.store.complete(job.job_id, results) is None:
                # aborted (or deleted) meanwhile: the abort won, drop what was written
                await asyncio.to_thread(self.results.delete, job.job_id)
            else:
                bound.info("job completed")
        except Exception as exc:
            bound.error("job bookkeeping failed", exc_info=exc)
        finally:
            self._running.pop(job.job_id, None)
            self._wake.set()
