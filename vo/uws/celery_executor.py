"""The ``celery`` executor: wake-ups over a Redis broker, jobs run by ``vlkb worker`` processes.

PostgreSQL stays the queue of record; a broker message carries no job, only "there may be
work": the task claims QUEUED jobs one after another (the same compare-and-set claim, with the
per-owner limit, as the local executor) until none is left for it. So

- a job runs at most once whatever the broker does: a message delivered twice (``acks_late``
  redelivery after a worker died, a duplicate wake-up) finds nothing to claim;
- a job is never lost with a message: the service's sweep sends wake-ups again for jobs left
  QUEUED while the broker queue is empty (a worker killed with messages reserved), and at start;
- a worker killed during a job leaves it EXECUTING under its id; the reaper (in the service and
  in every worker) ends it in ERROR once the process is seen gone (its pid on the same host, or
  heartbeats missing for 4 periods), and its partial result, written under a temporary name,
  is removed. Re-running it is not attempted: a job's effects are not proven repeatable.

ABORT reaches a query running on another machine through PostgreSQL (``pg_cancel_backend`` of
the connections named ``vlkb-job-<id>``) at once, and the worker's heartbeat notices the phase
change within one period. Workers run jobs in threads (``--pool threads``): a worker is one
process, which is what its id, the heartbeat and kill -9 are about; run several for more cores.

A job that fans out (``vo/uws/parts.py``) sends one wake-up per part it queues, from the worker
running it; a task's drain claims parts as well as jobs, so the parts spread over the workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog
from celery import Celery, signals
from psycopg_pool import AsyncConnectionPool

from db.jobs import JobStore
from vo.uws.context import PartFunction, Runner
from vo.uws.results import ResultStore
from vo.uws.worker import HEARTBEAT, JobWorker

__all__ = ["DEFAULT_BROKER", "QUEUE", "CeleryExecutor", "WorkerHost", "celery_app", "run_worker"]

log = structlog.get_logger("vlkb.uws")

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
#: the broker queue of wake-ups
QUEUE = "vlkb-jobs"
TASK = "vlkb.run_queued_jobs"
#: most wake-ups one sweep sends for jobs found waiting
_REKICK = 16


def celery_app(broker_url: str, *, queue: str = QUEUE) -> Celery:
    """The Celery application of the service and the workers (no result backend: the job rows are)."""
    app = Celery("vlkb", broker=broker_url, set_as_current=False)
    app.conf.update(
        task_default_queue=queue,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        # ack after the task: a wake-up taken by a worker that dies is delivered again (harmless)
        task_acks_late=True,
        task_reject_on_worker_lost=False,
        # one reserved wake-up per thread, so idle workers share the messages
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=4,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
    )
    return app


def send_wakeups(app: Celery, queue: str, count: int = 1) -> bool:
    """Send ``count`` wake-ups; False if the broker could not be reached (then the sweep sends again
    later, and a job's runner works on its parts itself)."""
    try:
        with app.producer_or_acquire() as producer:
            for _ in range(count):
                app.send_task(TASK, queue=queue, producer=producer, retry=False)
        return True
    except Exception as exc:
        log.warning("job wake-up not sent", error=str(exc))
        return False


class CeleryExecutor:
    """The service side: wake-ups on submit, cancels through PostgreSQL, and the sweep (heartbeat
    of nothing, reaper, destruction, wake-ups for waiting jobs)."""

    def __init__(self, store: JobStore, results: ResultStore, kinds: Sequence[str], *, broker_url: str,
                 conninfo: str, heartbeat: float = HEARTBEAT, queue: str = QUEUE) -> None:
        self.app = celery_app(broker_url, queue=queue)
        self.queue = queue
        self.kinds = list(kinds)
        # runs no job: reaps, destroys and keeps the broker awake
        self.worker = JobWorker(store, results, {}, conninfo=conninfo, heartbeat=heartbeat)
        self._loop_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._loop_task = asyncio.create_task(self._sweeps(), name="vlkb-uws-sweep")

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        await asyncio.to_thread(self.app.close)

    def _send(self, count: int = 1) -> bool:
        return send_wakeups(self.app, self.queue, count)

    async def submit(self, job_id: str) -> None:
        await asyncio.to_thread(self._send)

    async def cancel(self, job_id: str) -> None:
        await self.worker.store.cancel_queries(job_id)

    def _queued_messages(self) -> int:
        with self.app.connection_for_write() as conn:
            return int(conn.default_channel.queue_declare(self.queue, passive=True).message_count)

    async def rekick(self, older_than: float | None = None) -> int:
        """Send wake-ups for jobs waiting QUEUED longer than ``older_than`` seconds, if the
        broker queue is empty; how many were sent."""
        waiting = await self.worker.store.waiting(self.kinds, self.worker.heartbeat if older_than is None
                                                  else older_than)
        if not waiting:
            return 0
        try:
            if await asyncio.to_thread(self._queued_messages):
                return 0
        except Exception as exc:
            # a queue never used yet may not exist; and the broker may be down (then send fails too)
            log.debug("broker queue length unknown", error=str(exc))
        count = min(waiting, _REKICK)
        return count if await asyncio.to_thread(self._send, count) else 0

    async def _sweeps(self) -> None:
        first = True
        while True:
            try:
                await self.worker.reap()
                await self.worker.destroy_expired()
                # at start, every QUEUED job is waiting for a wake-up that may never come
                await self.rekick(0.0 if first else None)
                first = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database or the broker may be down; next period
                log.warning("job sweep failed", error=str(exc))
            await asyncio.sleep(self.worker.heartbeat)


class WorkerHost:
    """The asyncio side of one ``vlkb worker`` process: an event loop in a thread holding the
    connection pool, the :class:`JobWorker` and its heartbeat; Celery's threads call
    :meth:`run_queued`, which runs on that loop."""

    def __init__(self, conninfo: str, results: ResultStore, runners: Mapping[str, Runner], *, concurrency: int,
                 per_owner: int = 0, heartbeat: float = HEARTBEAT,
                 parts: Mapping[str, PartFunction] | None = None) -> None:
        self.conninfo = conninfo
        self.results = results
        self.runners = dict(runners)
        self.parts = dict(parts or {})
        #: sends wake-ups through the broker when a job queued parts (set by :func:`run_worker`)
        self.wake: Callable[[int], None] | None = None
        self.concurrency = concurrency
        self.per_owner = per_owner
        self.heartbeat = heartbeat
        self.loop = asyncio.new_event_loop()
        # runners run in this loop's default executor: one thread per Celery thread, and spare
        self.loop.set_default_executor(ThreadPoolExecutor(concurrency + 2, thread_name_prefix="vlkb-job"))
        self._thread = threading.Thread(target=self.loop.run_forever, name="vlkb-worker-loop", daemon=True)
        self.worker: JobWorker | None = None
        self._pool: AsyncConnectionPool | None = None
        self._beat: asyncio.Task[None] | None = None

    def _call(self, coro: Any, timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> JobWorker:
        self._thread.start()
        return self._call(self._open(), timeout=60)

    async def _open(self) -> JobWorker:
        self._pool = AsyncConnectionPool(self.conninfo, min_size=1, max_size=self.concurrency + 2, open=False,
                                         kwargs={"application_name": "vlkb-worker"})
        await self._pool.open(wait=True, timeout=30)
        self.worker = JobWorker(JobStore(self._pool), self.results, self.runners, conninfo=self.conninfo,
                                per_owner=self.per_owner, heartbeat=self.heartbeat, parts=self.parts)
        self.worker.wake = self.wake
        self._beat = asyncio.create_task(self._heartbeats(), name="vlkb-worker-heartbeat")
        log.info("worker ready", worker=self.worker.worker_id, concurrency=self.concurrency)
        return self.worker

    async def _heartbeats(self) -> None:
        assert self.worker is not None
        while True:
            try:
                await self.worker.watch()
                await self.worker.reap()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("worker heartbeat failed", error=str(exc))
            await asyncio.sleep(self.heartbeat)

    def run_queued(self) -> int:
        """The Celery task: run jobs and parts until none is left for this process; how many ran."""
        assert self.worker is not None
        return int(self._call(self.worker.drain()))

    def shutting_down(self) -> None:
        """Claim nothing more; the jobs running finish (Celery's warm shutdown waits for them)."""
        if self.worker is not None:
            self.worker.stopping = True

    def stop(self) -> None:
        async def close() -> None:
            if self._beat is not None:
                self._beat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._beat
            if self._pool is not None:
                await self._pool.close()

        with contextlib.suppress(Exception):
            self._call(close(), timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)


def run_worker(broker_url: str, host: WorkerHost, *, loglevel: str = "INFO", queue: str = QUEUE) -> None:
    """Run a Celery worker (threads pool, ``host.concurrency`` threads) until it is stopped."""
    app = celery_app(broker_url, queue=queue)

    @app.task(name=TASK)
    def run_queued_jobs() -> int:
        return host.run_queued()

    def on_shutdown(**_: object) -> None:
        host.shutting_down()

    signals.worker_shutting_down.connect(on_shutdown, weak=False)
    host.wake = lambda count: None if send_wakeups(app, queue, count) else None
    started = time.monotonic()
    host.start()
    try:
        app.worker_main([
            "worker", "--pool=threads", f"--concurrency={host.concurrency}", f"--queues={queue}",
            f"--hostname=vlkb-{os.getpid()}@{socket.gethostname()}", f"--loglevel={loglevel.upper()}",
            "--without-mingle", "--without-gossip", "--without-heartbeat",
        ])
    finally:
        host.shutting_down()
        host.stop()
        log.info("worker stopped", seconds=round(time.monotonic() - started, 1))
