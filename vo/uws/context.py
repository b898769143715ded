"""What a job runner gets besides its parameters: :class:`RunContext`, and the :data:`Runner` type.

Runners (``vo/jobs/<kind>.py``) are pure functions ``(parameters, ctx) -> results``; they run
in a thread of whichever process claimed the job (the service or a ``vlkb worker``), write
through ``ctx.results`` and open their database connections with :meth:`RunContext.connect`,
so an ABORT or the execution-duration watchdog can cancel them from another thread, and the
service can cancel their statements from another machine (by ``application_name``).

A runner spreads its work over every process that runs jobs with :meth:`RunContext.fan_out`:
parts (``vo/uws/parts.py``) run by registered :data:`PartFunction` s, results back in order.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg

from db.jobs import ResultRow, set_progress_blocking
from vo.caller import ANONYMOUS, Caller
from vo.uws.liveness import HEARTBEAT, STALE_BEATS, new_worker_id
from vo.uws.results import ResultStore

__all__ = ["JobAborted", "PartFunction", "Progress", "RunContext", "Runner"]


Conn = TypeVar("Conn", psycopg.Connection, psycopg.AsyncConnection)


class JobAborted(Exception):
    """The job was cancelled while it ran (ABORT, shutdown or timeout); its partial results are dropped."""


@dataclass
class RunContext:
    """Where a runner writes, which database it reads, and how long it may take."""

    job_id: str
    conninfo: str
    results: ResultStore
    #: seconds (the runner's statement_timeout); None: unlimited
    timeout: float | None
    #: the job's owner with the groups they had when the job was created: whom the job reads for
    #: (pass it to every read, :mod:`vo.caller`)
    caller: Caller = ANONYMOUS
    #: the public base URL of the service the job was created through (URLs in its results); None: unknown
    base_url: str | None = None
    #: what the job was promised when it was accepted (``JobService.create``), by name; empty for
    #: jobs accepted before terms were kept: the runner then uses its own settings
    terms: Mapping[str, Any] = field(default_factory=dict)
    #: time.monotonic() when the execution duration runs out
    deadline: float | None = None
    cancelled: bool = False
    #: cancelled because the execution duration ran out
    expired: bool = False
    #: the process running the job (or the part): written on the parts it claims
    worker_id: str = field(default_factory=new_worker_id)
    #: the part functions by name (:meth:`fan_out`); the same mapping in every process
    parts: Mapping[str, PartFunction] = field(default_factory=dict)
    #: called with a number of new parts, to wake idle processes (set by whoever built the context)
    wake: Callable[[int], None] | None = None
    #: seconds without a heartbeat after which a process running a part is taken for dead
    stale: float = STALE_BEATS * HEARTBEAT
    _conns: list[psycopg.Connection | psycopg.AsyncConnection] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _parts_used: int = 0

    def __post_init__(self) -> None:
        if self.deadline is None and self.timeout is not None:
            self.deadline = time.monotonic() + self.timeout

    def connect(self) -> psycopg.Connection:
        """A database connection that a cancel interrupts (close it when done)."""
        return self._watched(psycopg.connect(self.conninfo, application_name=f"vlkb-job-{self.job_id}"))

    async def aconnect(self) -> psycopg.AsyncConnection:
        """:meth:`connect` for the asyncio COPY stream of a runner's query (``vo.results.stream_select_blocking``)."""
        return self._watched(await psycopg.AsyncConnection.connect(self.conninfo,
                                                                   application_name=f"vlkb-job-{self.job_id}"))

    def _watched(self, conn: Conn) -> Conn:
        with self._lock:
            # a job of many parts connects once a part: forget the connections closed since
            self._conns = [c for c in self._conns if not c.closed]
            self._conns.append(conn)
            if self.cancelled:
                conn.pgconn.finish()
                raise JobAborted(self.job_id)
        return conn

    def result(self, result_id: str, media_type: str, data: bytes | None = None) -> ResultRow:
        """The result row of ``result_id`` in the store (its size read back); ``data`` is written first."""
        if data is not None:
            with self.results.writer(self.job_id, result_id) as out:
                out.write(data)
        location = self.results.location(self.job_id, result_id)
        return ResultRow(self.job_id, result_id, location, media_type, self.results.size(location))

    def cancel(self, *, expired: bool = False) -> None:
        """Cancel the queries running for this job (from any thread)."""
        with self._lock:
            self.cancelled = True
            self.expired = self.expired or expired
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(Exception):
                if isinstance(conn, psycopg.Connection):
                    conn.cancel_safe(timeout=5)
                else:  # its event loop runs in the runner's thread: libpq's blocking cancel, from this one
                    conn.cancel()

    def progress(self, text: str) -> None:
        """Say how far the job has got (``2 of 4 tiles``): UWS clients read it in the job's
        ``uws:jobInfo`` while it executes. Best effort: a failed update never fails the job."""
        try:
            with psycopg.connect(self.conninfo, application_name=f"vlkb-job-{self.job_id}") as conn:
                set_progress_blocking(conn, self.job_id, text)
        except psycopg.Error:
            pass

    def fan_out(self, name: str, payloads: Iterable[Any], *, window: int = 8) -> Iterator[Any]:
        """The results of part function ``name`` on each of ``payloads``, in order, computed by any
        process that runs jobs (this one included), at most ``window`` parts queued or running at
        once; see :func:`vo.uws.parts.fan_out`."""
        from vo.uws.parts import fan_out

        return fan_out(self, name, payloads, window=window)

    def next_part(self) -> int:
        """A part number not used yet by this job's runner."""
        with self._lock:
            self._parts_used += 1
            return self._parts_used

    def check(self) -> None:
        """Raise :class:`JobAborted` if the job was cancelled (runners call it between steps)."""
        if self.cancelled:
            raise JobAborted(self.job_id)


Runner = Callable[[Mapping[str, list[str]], RunContext], Sequence[ResultRow]]
#: a part of a job's work: ``(payload, ctx) -> result``, both picklable; pure, and idempotent (a part
#: whose process died is run again); ``ctx`` is the job's (its owner in ``ctx.caller``)
PartFunction = Callable[[Any, RunContext], Any]


class Progress:
    """A runner's progress, ``n of N``, reported through :meth:`RunContext.progress` at most every
    ``every`` seconds, and at the end (a job of many small items would otherwise write once per item)."""

    def __init__(self, ctx: RunContext, total: int, every: float = 2.0) -> None:
        self.ctx, self.total, self.every = ctx, total, every
        self._last = -math.inf
        self.report(0)

    def report(self, done: int) -> None:
        now = time.monotonic()
        if done < self.total and now - self._last < self.every:
            return
        self._last = now
        self.ctx.progress(f"{done} of {self.total}")
