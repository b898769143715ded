"""Fanning one job's work out over every process that runs jobs: parts.

A runner calls ``ctx.fan_out(name, payloads, window=...)`` (:func:`fan_out`): each payload becomes
a *part*, a row of ``vlkb.job_parts`` (``db/parts.py``) naming a part function registered like the
runners (``app/jobs.py``: ``job_parts``). Any process running jobs claims queued parts of EXECUTING
jobs when it has a free slot (the local executor's dispatch loop; a ``vlkb worker``'s drain, woken
through the broker by the runner), runs the function in a thread with the job's context (its owner
in ``ctx.caller``: parts read through the seam like runners) and writes the pickled result to the
job's results store under a hidden name (``.part-<n>-<run>``, written atomically by the store's
writer, never a job result). The runner yields results in order, removing each output as it
reads it, with at most ``window`` parts in flight (memory does not grow with the number of parts),
and while the next result is not there it runs its own queued parts itself: a job progresses with
one process, and never deadlocks when every slot holds a runner.
A lone payload is computed by the runner itself: with nothing to spread, the queue, the pickles and
the output file would only add time.

Failures: a part function raising a :class:`~vo.errors.VlkbError` ends the job in ERROR with that
message; any other exception is logged where it ran and ends the job as an internal failure. A
process that dies while running a part leaves it ``running`` under its id; once it is seen dead
(:func:`~vo.uws.liveness.worker_dead`: its pid on this host, or heartbeats missing) the runner's
wait loop or the reaper queues it again. Unlike a job, a part is re-run: part functions are pure
and their output is replaced whole, so a second run gives the same bytes (and a late finisher of a
part claimed again changes nothing: finishes are compare-and-set on the claim). When the job stops
being EXECUTING (ABORT, the reaper, its runner failed), nobody claims its parts, the processes
running some cancel them at their next heartbeat (:meth:`~vo.uws.worker.JobWorker.watch`), a part
output written after the job's results were removed is removed by its writer, and the rows go with
the job (ON DELETE CASCADE).
"""

from __future__ import annotations

import pickle
import time
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from itertools import chain, islice
from typing import Any

import psycopg
import structlog

from db import parts as sql
from db.parts import PartRow
from vo import errors
from vo.errors import VlkbError
from vo.uws.context import JobAborted, PartFunction, RunContext
from vo.uws.liveness import worker_dead

__all__ = ["PartFailed", "fan_out", "requeue_dead", "run_claimed"]

log = structlog.get_logger("vlkb.uws")

#: the runner's wait for the next result: first and longest poll of the table, seconds
_MIN_WAIT, _MAX_WAIT = 0.02, 0.25


class PartFailed(RuntimeError):
    """A part function crashed (not a VlkbError): the job ends as an internal failure."""


def _bookkeeping(ctx: RunContext) -> psycopg.Connection:
    # not ctx.connect(): an ABORT cancels the job's queries, never the part bookkeeping (db/parts.py: autocommit)
    return psycopg.connect(ctx.conninfo, autocommit=True, application_name="vlkb-parts")


def run_claimed(conn: psycopg.Connection, row: PartRow, fn: PartFunction, ctx: RunContext) -> None:
    """Run the claimed part ``row`` with ``fn`` in this thread and record how it ended.

    A cancel (ABORT, shutdown) gives the claim up, so another process may take the part while the
    job is EXECUTING, and raises :class:`JobAborted`."""
    assert row.payload is not None
    output: str | None = None
    try:
        # our own pickle: written by the job's runner (fan_out), never by a client
        result = fn(pickle.loads(row.payload), ctx)
        ctx.check()
        output = ctx.results.location(ctx.job_id, f".part-{row.part:06d}-{row.runs}")
        with ctx.results.writer(ctx.job_id, output.rsplit("/", 1)[1]) as out:
            pickle.dump(result, out, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        if isinstance(exc, JobAborted) or ctx.cancelled:
            with suppress(psycopg.Error):
                sql.requeue_blocking(conn, row)
            raise JobAborted(ctx.job_id) from None
        if isinstance(exc, VlkbError):
            sql.finish_blocking(conn, row, "error", error_code=_error_class(exc), error=exc.message)
        else:
            log.error("job part crashed", job_id=row.job_id, part=row.part, name=row.name, exc_info=exc)
            sql.finish_blocking(conn, row, "error", error=f"{type(exc).__name__}: {exc}")
        return
    if not sql.finish_blocking(conn, row, "done", output=output):
        # queued again meanwhile, or the job ended (its results may be removed already): drop ours,
        # and give the claim up if it is still ours (the job ended: the part stays queued, unclaimed)
        ctx.results.remove(output)
        sql.requeue_blocking(conn, row)


def _error_class(exc: VlkbError) -> str:
    """The name of the class of ``exc`` in :mod:`vo.errors`, or of its nearest base there
    (``NoOverlapError`` is sent back as the ``UsageError`` it is)."""
    return next(c.__name__ for c in type(exc).__mro__ if getattr(errors, c.__name__, None) is c)


def _error(row: PartRow) -> Exception:
    cls = getattr(errors, row.error_code or "", None)
    if isinstance(cls, type) and issubclass(cls, VlkbError):
        with suppress(TypeError):
            return cls(row.error or "")
    return PartFailed(f"part {row.part} ({row.name}) failed: {row.error}")


def _take(ctx: RunContext, row: PartRow) -> Any:
    assert row.output is not None
    data = b"".join(ctx.results.read(row.output))
    ctx.results.remove(row.output)
    return pickle.loads(data)  # our own pickle (run_claimed)


def requeue_dead(conn: psycopg.Connection, rows: Iterable[PartRow], me: str, stale: timedelta) -> int:
    """Queue again the parts of ``rows`` whose process is gone; how many."""
    now = datetime.now(UTC)
    count = 0
    for row in rows:
        if worker_dead(row, me, now, stale) and sql.requeue_blocking(conn, row):
            log.warning("job part queued again", job_id=row.job_id, part=row.part, worker=row.worker)
            count += 1
    return count


def fan_out(ctx: RunContext, name: str, payloads: Iterable[Any], *, window: int = 8) -> Iterator[Any]:
    """The results of part function ``name`` on ``payloads``, in order; see the module docstring."""
    fn = ctx.parts[name]  # registered under that name in every process (app/jobs.py)
    window = max(1, window)
    items = iter(payloads)
    first = list(islice(items, 2))
    if len(first) < 2:
        # nothing to spread: the runner computes a lone part itself, without the queue, the pickles
        # and the output file (a one-tile search, a stamps job of one chunk)
        for payload in first:
            ctx.check()
            yield fn(payload, ctx)
        return
    items = chain(first, items)
    flight: deque[int] = deque()
    more = True
    wait = _MIN_WAIT
    sweep_every = max(0.5, ctx.stale / 8)
    last_sweep = time.monotonic()
    with _bookkeeping(ctx) as conn:
        while True:
            added = 0
            while more and len(flight) < window:
                try:
                    payload = next(items)
                except StopIteration:
                    more = False
                    break
                no = ctx.next_part()
                sql.add_blocking(conn, ctx.job_id, no, name, pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
                flight.append(no)
                added += 1
            if added:
                sql.notify_blocking(conn)  # the local executors of other processes listen
                if ctx.wake is not None:
                    ctx.wake(added)
            if not flight:
                return
            ctx.check()
            rows = sql.parts_blocking(conn, ctx.job_id, list(flight))
            failed = next((rows[n] for n in flight if rows[n].state == "error"), None)
            if failed is not None:
                raise _error(failed)
            head = rows[flight[0]]
            if head.state == "done":
                flight.popleft()
                wait = _MIN_WAIT
                yield _take(ctx, head)
                continue
            # while the next result is not there: one of our own queued parts, here
            mine = sql.claim_blocking(conn, ctx.worker_id, [name], ctx.job_id)
            if mine is not None:
                run_claimed(conn, mine, fn, ctx)
                wait = _MIN_WAIT
                continue
            if time.monotonic() - last_sweep > sweep_every:
                last_sweep = time.monotonic()
                if not sql.executing_blocking(conn, ctx.job_id):
                    # ended elsewhere (ABORT, the reaper): our process's watch cancels us soon too
                    raise JobAborted(ctx.job_id)
                requeue_dead(conn, sql.running_blocking(conn, ctx.job_id), ctx.worker_id,
                             timedelta(seconds=ctx.stale))
            time.sleep(wait)
            wait = min(2 * wait, _MAX_WAIT)
