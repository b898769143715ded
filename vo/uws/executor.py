"""Job execution: the :class:`Executor` protocol the service talks to, and :class:`LocalExecutor`.

ARCHITECTURE decision 4: jobs run through an executor. ``local`` (here) is a pool of threads
inside the service process, the embedded default; ``celery`` (``vo/uws/celery_executor.py``)
sends wake-ups over a Redis broker to ``vlkb worker`` processes on any number of machines.
Both run jobs with the same :class:`~vo.uws.worker.JobWorker`, so the runners
(``vo/jobs/*``) and the guarantees are the same: a job is claimed once by compare-and-set and
never re-run; a process that dies leaves its jobs to the reaper, which ends them in ERROR;
QUEUED jobs left by a stopped service run when one starts again. A free slot also runs the parts
a job fans out (``vo/uws/parts.py``), its own or another process's.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from typing import Protocol

import structlog

from db.jobs import JobStore
from db.listen import listen
from db.parts import CHANNEL, PartRow
from vo.uws.context import JobAborted, PartFunction, RunContext, Runner
from vo.uws.model import Job
from vo.uws.results import ResultStore
from vo.uws.worker import HEARTBEAT, JobWorker, worker_dead

__all__ = ["Executor", "JobAborted", "LocalExecutor", "RunContext", "Runner", "worker_dead"]

log = structlog.get_logger("vlkb.uws")


class Executor(Protocol):
    """How jobs get run: the service calls these, never the runners directly."""

    async def start(self) -> None:
        """Start running jobs (QUEUED jobs left from before run too)."""

    async def stop(self) -> None:
        """Stop; jobs still running here end in ERROR."""

    async def submit(self, job_id: str) -> None:
        """``job_id`` was just QUEUED: have it claimed soon."""

    async def cancel(self, job_id: str) -> None:
        """``job_id`` was ABORTED or deleted: stop its running work at once, wherever it runs."""


class LocalExecutor:
    """Runs jobs and parts of jobs in threads of the service process, at most ``concurrency`` at a
    time (and at most ``per_owner`` jobs of one owner; the others stay QUEUED until one of theirs
    ends). Parts come first: they finish work already started. Other processes' parts are found
    at once (a runner notifies ``db.parts.CHANNEL``, which this process listens to), else by
    polling every ``poll`` seconds, then at once as long as there are some."""

    def __init__(self, store: JobStore, results: ResultStore, runners: Mapping[str, Runner], *,
                 conninfo: str, concurrency: int = 4, per_owner: int = 0, poll: float = 2.0,
                 heartbeat: float = HEARTBEAT, parts: Mapping[str, PartFunction] | None = None) -> None:
        self.worker = JobWorker(store, results, runners, conninfo=conninfo, per_owner=per_owner,
                                heartbeat=heartbeat, parts=parts)
        self.concurrency = concurrency
        self.poll = poll
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._part_tasks: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._listen_task: asyncio.Task[None] | None = None
        self._last_sweep = 0.0
        self._conninfo = conninfo

    @property
    def running(self) -> list[str]:
        """Ids of the jobs running in this process."""
        return list(self._tasks)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # a runner queued parts (from its thread): look for them now

        def wake(_count: int) -> None:
            loop.call_soon_threadsafe(self._wake.set)

        self.worker.wake = wake
        if self.worker.parts:
            self._listen_task = asyncio.create_task(self._listen(), name="vlkb-uws-parts-listen")
        self._loop_task = asyncio.create_task(self._dispatch(), name="vlkb-uws-dispatch")

    async def stop(self) -> None:
        self.worker.stopping = True
        for task in (self._loop_task, self._listen_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for ctx in [*self.worker.running.values(), *self.worker.running_parts.values()]:
            await asyncio.to_thread(ctx.cancel)
        tasks = [*self._tasks.values(), *self._part_tasks.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=10)

    async def submit(self, job_id: str) -> None:
        self._wake.set()

    async def cancel(self, job_id: str) -> None:
        ctx = self.worker.running.get(job_id)
        if ctx is not None:
            await asyncio.to_thread(ctx.cancel)

    async def reap(self) -> list[str]:
        """End in ERROR the EXECUTING jobs whose process is gone; their ids."""
        return await self.worker.reap()

    async def _sweep(self) -> None:
        await self.worker.watch()
        await self.worker.reap()
        await self.worker.destroy_expired()

    async def _dispatch(self) -> None:
        while True:
            try:
                if time.monotonic() - self._last_sweep > self.worker.heartbeat:
                    self._last_sweep = time.monotonic()
                    await self._sweep()
                while len(self._tasks) + len(self._part_tasks) < self.concurrency:
                    part = await self.worker.claim_part()
                    if part is None:
                        break
                    key = (part.job_id, part.part)
                    self._part_tasks[key] = asyncio.create_task(self._run_part(part), name=f"vlkb-part-{key}")
                while len(self._tasks) + len(self._part_tasks) < self.concurrency:
                    job = await self.worker.claim()
                    if job is None:
                        break
                    ctx = self.worker.context(job)
                    task = asyncio.create_task(self._execute(job, ctx), name=f"vlkb-job-{job.job_id}")
                    self._tasks[job.job_id] = task
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be down; try again at the next poll
                log.warning("job dispatch failed", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=min(self.poll, self.worker.heartbeat))
            self._wake.clear()

    async def _listen(self) -> None:
        """Wake the dispatch loop when a runner of any process queued parts (LISTEN; on a lost
        connection, polling alone until it is back)."""
        await listen(self._conninfo, CHANNEL, name="vlkb-parts-listen", heard=lambda _: self._wake.set(),
                     retry=self.poll)

    async def _run_part(self, part: PartRow) -> None:
        try:
            await self.worker.run_part(part)
        finally:
            self._part_tasks.pop((part.job_id, part.part), None)
            self._wake.set()

    async def _execute(self, job: Job, ctx: RunContext) -> None:
        try:
            await self.worker.execute(job, ctx)
        finally:
            self._tasks.pop(job.job_id, None)
            self._wake.set()
