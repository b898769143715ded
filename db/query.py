"""Run a translated query safely and stream its rows as raw ``COPY`` output.

A query runs in its own read-only transaction, as the query role (``SET LOCAL ROLE``,
ARCHITECTURE decision 2), with ``statement_timeout``, and is always rolled back: when the
rows are all read, when the reader fails, and when the consumer stops early (a client that
disconnects, a MAXREC cut), in which case the ``COPY`` is cancelled and drained first.

Rows come out of ``COPY (query) TO STDOUT`` in PostgreSQL's binary, text or CSV format,
grouped into :class:`CopyBatch` es of about ``batch_bytes`` holding whole rows only: the
backend sends one CopyData message per row (PostgreSQL protocol, "COPY Operations"), so
each batch also carries the length of each row, which lets the writers in
``vo/votable/`` parse a batch with numpy instead of walking it in Python. The binary
file header and trailer are removed here.

Reading goes through libpq directly (``PGconn.get_copy_data``), draining every message
already received before waiting on the socket: psycopg's own ``Copy`` iterator costs one
wait round trip per row, which halves the rate. :func:`astream_copy` drives it over an
``AsyncConnection`` (from ``psycopg_pool.AsyncConnectionPool``, or one a job runner opens on an
event loop of its own: ``vo.results.stream_select_blocking``).

This module knows SQL and libpq, not VOTable: the per-column select list comes from the
caller (``vo/votable``). It never commits anything.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import threading
from collections.abc import AsyncIterator, Generator, Sequence

import numpy as np
import psycopg
from psycopg import errors as pgerrors
from psycopg import pq

from db.copybatch import CopyBatch, CopyFormat
from db.ddl import QUERY_ROLE
from db.session import read_only_after, setup_statement
from db.upload import TempTable, aload_tables

__all__ = [
    "BINARY_SIGNATURE",
    "CopyBatch",
    "CopyFormat",
    "astream_copy",
    "copy_statement",
]

log = logging.getLogger(__name__)


#: The first 11 bytes of a ``COPY ... (FORMAT BINARY)`` stream.
BINARY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_TRAILER = b"\xff\xff"

#: How long cleanup (cancel, drain, rollback) may take before the connection is closed instead.
_CLEANUP_TIMEOUT = 10.0

_WAIT_R, _WAIT_W = 1, 2
_COPY_OUT = pq.ExecStatus.COPY_OUT
_FATAL = pq.ExecStatus.FATAL_ERROR


def copy_statement(
    query: str, select_list: Sequence[str], *, fmt: CopyFormat = "binary", limit: int | None = None
) -> str:
    """``COPY (SELECT ... FROM (query) AS q(c0, c1, ...) [LIMIT n]) TO STDOUT (FORMAT fmt)``.

    ``select_list`` has one trusted SQL template (written by vlkb, never by a user) per
    output column of ``query``, in which ``{i}`` stands for column ``i`` of ``query``, e.g.
    ``"{0}::double precision"``; the COPY lists them in the given order, so a template may
    refer to any column. Renaming the columns positionally makes duplicate or odd output
    names harmless, and casts make the wire format exactly what the reader expects.
    ``limit`` caps the rows the server produces (MAXREC + 1).
    """
    if fmt not in ("binary", "text", "csv"):
        raise ValueError(f"unknown COPY format {fmt!r}")
    if not select_list:
        raise ValueError("a query result needs at least one column")
    names = [f"c{i}" for i in range(len(select_list))]
    refs = [f"q.{n}" for n in names]
    exprs = ", ".join(t.format(*refs) for t in select_list)
    tail = f" LIMIT {int(limit)}" if limit is not None else ""
    return (
        f"COPY (SELECT {exprs} FROM (\n{query}\n) AS q({', '.join(names)}){tail}) "
        f"TO STDOUT (FORMAT {fmt.upper()})"
    )


# -- the libpq conversation, written as a generator of waits ------------------------------------
#
# The generators below yield _WAIT_R/_WAIT_W when libpq would block and CopyBatch objects when
# rows are ready; the driver waits on the socket for the former and hands the latter on.

_PQGen = Generator["int | CopyBatch", None, None]


def _flush(pgconn: pq.abc.PGconn) -> Generator[int, None, None]:
    while pgconn.flush() != 0:
        yield _WAIT_W


def _results(pgconn: pq.abc.PGconn, stop_at_copy: bool = False) -> Generator[int, None, pq.abc.PGresult | None]:
    """Collect the results of the current command; raise the first error, after draining."""
    error: psycopg.Error | None = None
    while True:
        while pgconn.is_busy():
            yield _WAIT_R
            pgconn.consume_input()
        res = pgconn.get_result()
        if res is None:
            break
        if res.status == _COPY_OUT and stop_at_copy:
            return res
        if res.status == _FATAL and error is None:
            error = pgerrors.error_from_result(res, encoding="utf-8")
    if error is not None:
        raise error
    return None


def _exec_gen(pgconn: pq.abc.PGconn, command: bytes) -> Generator[int, None, None]:
    """Run ``command`` (simple protocol, several statements allowed) and collect its results."""
    pgconn.send_query(command)
    yield from _flush(pgconn)
    yield from _results(pgconn)


def _split_header(first: bytes) -> int:
    """Size of the binary COPY file header at the start of ``first``."""
    if first[:11] != BINARY_SIGNATURE:
        raise psycopg.DataError("not a binary COPY stream")
    (ext,) = struct.unpack_from(">i", first, 15)
    return 19 + ext


class _Batcher:
    """Turns the collected CopyData messages into CopyBatches, removing the binary header and trailer."""

    def __init__(self, binary: bool) -> None:
        self.binary = binary
        self.first = True

    def make(self, data: bytearray, lens: list[int]) -> CopyBatch | None:
        start, end = 0, len(data)
        if self.binary and lens:
            if self.first:
                start = _split_header(bytes(data[:64]))
                lens[0] -= start
                if lens[0] == 0:
                    del lens[0]
            if lens and lens[-1] == 2 and data[end - 2 :] == _TRAILER:
                end -= 2
                del lens[-1]
        if lens:
            self.first = False
        if not lens:
            return None
        return CopyBatch(bytes(memoryview(data)[start:end]), np.array(lens, dtype=np.int64))


def _copy_gen(conn: psycopg.Connection | psycopg.AsyncConnection, setup: bytes, statement: bytes,
              binary: bool, batch_bytes: int, state: dict[str, bool]) -> _PQGen:
    pgconn = conn.pgconn
    pgconn.send_query(setup)
    yield from _flush(pgconn)
    yield from _results(pgconn)
    # The extended protocol accepts exactly one statement: nothing can ride along the COPY.
    pgconn.send_query_params(statement, None)
    state["copying"] = True
    yield from _flush(pgconn)
    try:
        res = yield from _results(pgconn, stop_at_copy=True)
    except psycopg.Error:
        state["copying"] = False  # the statement failed before any row: nothing to cancel
        raise
    if res is None:
        raise psycopg.ProgrammingError("the statement is not a COPY TO STDOUT")

    batcher = _Batcher(binary)
    # The first batch goes out early so the caller sees the first rows (or the error) quickly.
    room = min(batch_bytes, 1 << 16)
    first = True
    # Each message is copied at once and its buffer freed: keeping thousands of memoryviews
    # alive until a join costs more (allocator and garbage collector) than the copy.
    data = bytearray()
    lens: list[int] = []
    add = lens.append
    get = pgconn.get_copy_data
    consumed = False
    while True:
        # This loop runs once per row: keep it to a call, a copy, an append and two stores.
        nbytes, message = get(1)
        if nbytes > 0:
            data += message
            add(nbytes)
            room -= nbytes
            consumed = False
            if room < 0:
                batch = batcher.make(data, lens)
                if batch is not None:
                    yield batch
                data, lens, room, first = bytearray(), [], batch_bytes, False
                add = lens.append
            continue
        if nbytes == 0:
            # Nothing parsed yet: read what the socket holds, and wait only if that was nothing.
            if consumed:
                if first and lens:  # the writer waits for the first rows before its header
                    batch = batcher.make(data, lens)
                    if batch is not None:
                        yield batch
                    data, lens, room, first = bytearray(), [], batch_bytes, False
                    add = lens.append
                yield _WAIT_R
            pgconn.consume_input()
            consumed = True
            continue
        if nbytes == -1:
            break
        raise psycopg.OperationalError(pgconn.get_error_message())
    # The COPY is over; its outcome (an error after some rows, a timeout) comes as a result.
    yield from _results(pgconn)
    state["copying"] = False
    batch = batcher.make(data, lens)
    if batch is not None:
        yield batch


def _drain_gen(pgconn: pq.abc.PGconn) -> Generator[int, None, None]:
    """Discard what is left of a cancelled COPY and every result it gives, errors included."""
    while True:
        try:
            nbytes, _ = pgconn.get_copy_data(1)
        except psycopg.OperationalError:  # not, or no longer, in COPY state
            nbytes = -1
        if nbytes > 0:
            continue
        if nbytes == 0:
            yield _WAIT_R
            pgconn.consume_input()
            continue
        while pgconn.is_busy():
            yield _WAIT_R
            pgconn.consume_input()
        if pgconn.get_result() is None:
            return
        # A COPY_OUT result sends us back to reading data; anything else (the cancel error,
        # a command tag) is dropped and the next result fetched.


# -- the driver -----------------------------------------------------------------------------------


async def _wait_async(pgconn: pq.abc.PGconn, what: int) -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()
    fd = pgconn.socket

    def ready() -> None:
        if not fut.done():
            fut.set_result(None)

    add, remove = (loop.add_reader, loop.remove_reader) if what == _WAIT_R else (loop.add_writer, loop.remove_writer)
    add(fd, ready)
    try:
        await fut
    finally:
        remove(fd)


async def _run_async(gen: Generator[int, None, None], pgconn: pq.abc.PGconn) -> None:
    for what in gen:
        await _wait_async(pgconn, what)


async def astream_copy(conn: psycopg.AsyncConnection, query: str, select_list: Sequence[str], *,
                       fmt: CopyFormat = "binary", limit: int | None = None, role: str | None = QUERY_ROLE,
                       timeout: float | None = 60.0, groups: Sequence[str] = (), user: str | None = None,
                       batch_bytes: int = 1 << 19, tables: Sequence[TempTable] = (), base_url: str | None = None,
                       ) -> AsyncIterator[CopyBatch]:
    """Run ``query`` and yield its rows in COPY format ``fmt``, in batches of whole rows.

    ``select_list`` and ``limit`` shape the output as in :func:`copy_statement`. ``conn``
    must be idle (no transaction open). The transaction is read-only, runs as ``role``
    (None: as the connection's own user) with ``statement_timeout`` = ``timeout`` seconds
    and sees what the caller ``user`` in ``groups`` may read (row-level security, anonymous by default),
    with ``base_url`` as the public base URL of stored relative URLs (:mod:`db.session`),
    and is rolled back when the generator ends, fails or is closed early; if that cleanup
    itself fails, the connection is closed. Database errors are psycopg exceptions.
    ``tables`` (TAP uploads) are created and filled first, in the same transaction, which
    is made read-only only after that (``db/upload.py``); the rollback drops them.

    Close it with ``aclose()`` (e.g. ``contextlib.aclosing``) when stopping early, so the
    COPY is cancelled and the transaction rolled back before the connection goes back to
    its pool. If the task is cancelled while waiting on the database, the connection is
    closed instead (a pool replaces it): that always ends the transaction and cannot block.
    """
    _check_idle(conn)
    statement = copy_statement(query, select_list, fmt=fmt, limit=limit)
    version = conn.info.server_version
    setup = (read_only_after(role) if tables
             else setup_statement(role, timeout, version, groups, user=user, base_url=base_url)).as_bytes(conn)
    state = {"copying": False}
    gen = _copy_gen(conn, setup, statement.encode(), fmt == "binary", batch_bytes, state)
    pgconn = conn.pgconn
    cancelled = False
    try:
        if tables:
            # the writable transaction the upload tables are loaded in first, sent as is (psycopg's
            # execute() would open its own transaction); ``setup`` then makes it read-only
            writable = setup_statement(None, timeout, version, groups, user=user, read_only=False, base_url=base_url)
            await _run_async(_exec_gen(pgconn, writable.as_bytes(conn)), pgconn)
            await aload_tables(conn, tables, grant_to=role)
        for item in gen:
            if isinstance(item, int):
                await _wait_async(pgconn, item)
            else:
                yield item
    except asyncio.CancelledError:
        cancelled = True
        raise
    finally:
        gen.close()
        if cancelled:
            _abandon(conn.pgconn)
        else:
            await _cleanup_async(conn, state["copying"])


def _abandon(pgconn: pq.abc.PGconn) -> None:
    """End the work of a cancelled task on ``pgconn`` (its client went away): close the connection,
    and have a thread send the server a cancel request for a command still running.

    Closing never suspends, so it completes even in a cancelled task; a pool then discards the
    connection. A backend notices a closed client only when it next writes to it, or at its
    next ``client_connection_check_interval`` check; the cancel request stops a query that is
    still computing its first rows at once. It is sent from a thread because libpq's cancel
    blocks on a connection of its own to the server.
    """
    cancel = None
    if pgconn.transaction_status == pq.TransactionStatus.ACTIVE:
        try:
            cancel = pgconn.get_cancel()
        except psycopg.Error:
            cancel = None
    pgconn.finish()
    if cancel is not None:
        threading.Thread(target=_send_cancel, args=(cancel,), name="vlkb-query-cancel", daemon=True).start()


def _send_cancel(cancel: pq.abc.PGcancel) -> None:
    try:
        cancel.cancel()
    except Exception as exc:  # the backend may be gone already: nothing left to stop
        log.info("cancel request not delivered: %s", exc)


async def _cleanup_async(conn: psycopg.AsyncConnection, copying: bool) -> None:
    """Cancel and drain an unfinished COPY, then roll back; close the connection if that fails."""
    try:
        async with asyncio.timeout(_CLEANUP_TIMEOUT):
            if copying:
                await conn.cancel_safe(timeout=_CLEANUP_TIMEOUT)
                await _run_async(_drain_gen(conn.pgconn), conn.pgconn)
            await conn.rollback()
    except asyncio.CancelledError:
        _abandon(conn.pgconn)
        raise
    except Exception as exc:
        log.warning("query cleanup failed, closing the connection: %s", exc)
        conn.pgconn.finish()


# -- helpers --------------------------------------------------------------------------------------


def _check_idle(conn: psycopg.Connection | psycopg.AsyncConnection) -> None:
    status = conn.pgconn.transaction_status
    if status != pq.TransactionStatus.IDLE:
        raise psycopg.ProgrammingError(
            f"a query needs an idle connection, this one is {pq.TransactionStatus(status).name}: "
            "commit or roll back first"
        )

