"""The one results runner: a query plan and a caller in, a streamed document out.

TAP sync, TAP async, SIA and the ViaLactea answers all run their SQL here. A
:class:`QueryPlan` says what to run (trusted SQL made by vlkb from the request, its result
columns, the output format, MAXREC, the INFOs to write, uploaded tables to load first, the
public base URL stored relative URLs are completed with); the
runner opens the caller's session (:mod:`db.session`, through ``db.query``'s COPY streaming),
feeds the batches to a :class:`~vo.votable.writers.ResultWriter` and maps database errors to
the user's errors (:func:`query_error`). The writers only encode batches.

:func:`stream_select` starts the stream before it returns, so a query that fails to start (or in
its first rows) raises a :class:`~vo.errors.VlkbError` while the HTTP status can still say so
(STYLE section 5); an early stop (client gone) rolls back before the connection is pooled again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import psycopg
from psycopg import errors as pgerrors
from psycopg_pool import AsyncConnectionPool

from db.copybatch import CopyBatch
from db.query import astream_copy
from db.upload import TempTable, UploadLoadError
from vo.caller import Caller
from vo.errors import FatalError, TransientError, UsageError, VlkbError
from vo.votable.columns import ResultColumn
from vo.votable.writers import ResultFormat, ResultWriter, resolve_format

__all__ = ["Connect", "QueryPlan", "prime", "query_error", "stream_select", "stream_select_blocking"]


@dataclass(frozen=True)
class QueryPlan:
    """What to run and how to write it: ``sql`` is trusted (made by vlkb, never by a user)."""

    sql: str
    columns: Sequence[ResultColumn]
    format: ResultFormat
    maxrec: int | None = None
    infos: Mapping[str, str] | None = None
    #: uploaded tables, created and filled in the query's transaction first (``db/upload.py``)
    tables: Sequence[TempTable] = field(default_factory=tuple)
    #: the public base URL the answer names the service by: stored relative URLs (ObsCore
    #: ``access_url``, ``preview``) are made absolute with it in the query's session; None
    #: leaves them relative
    base_url: str | None = None

    @classmethod
    def of(cls, sql: str, columns: Sequence[ResultColumn], fmt: str | ResultFormat = "votable", **kw: object
           ) -> QueryPlan:
        """A plan with ``fmt`` given by name or MIME type."""
        return cls(sql, columns, fmt if isinstance(fmt, ResultFormat) else resolve_format(fmt), **kw)  # type: ignore[arg-type]


def query_error(exc: BaseException) -> VlkbError:
    """The error to report for an exception raised while running or writing a query.

    Messages are for the user: PostgreSQL's primary message for errors the query caused
    (SQLSTATE classes 22 data, 42 syntax/access, 54 limits), a fixed text otherwise.
    """
    if isinstance(exc, VlkbError):
        return exc
    if isinstance(exc, UploadLoadError):
        return UsageError(f"UPLOAD {exc.label}: {exc.message}")
    if isinstance(exc, pgerrors.QueryCanceled):
        return UsageError("the query ran longer than the time limit and was cancelled: "
                          "narrow it, or run it as an asynchronous job")
    if isinstance(exc, psycopg.Error):
        state = exc.sqlstate or ""
        primary = exc.diag.message_primary or str(exc).strip().splitlines()[0]
        # data, syntax/access, limits, read-only, unsupported feature, raised by a function
        if state.startswith(("22", "42", "54", "25", "0A", "38", "39", "P0001")):
            return UsageError(f"query failed: {primary}")
        if isinstance(exc, psycopg.OperationalError) or state.startswith(("08", "53", "57P")):
            return TransientError("the database is unavailable, try again later")
    return FatalError("internal error while running the query")


def _prepare(plan: QueryPlan, caller: Caller, timeout: float | None) -> tuple[ResultWriter, CopyStream]:
    """The writer of ``plan`` and the COPY that feeds it, run for ``caller`` on the connection it is
    given; the database is asked for MAXREC + 1 rows, so an overflow can be told."""
    writer = ResultWriter(plan.format, plan.columns, infos=plan.infos, classify=query_error)
    limit = None if plan.maxrec is None else max(0, plan.maxrec) + 1
    return writer, partial(astream_copy, query=plan.sql, select_list=writer.select_list, fmt=writer.copy_format,
                           limit=limit, timeout=timeout, tables=plan.tables, groups=caller.groups, user=caller.user,
                           base_url=plan.base_url)


#: a query's COPY stream on the connection it is given (:func:`db.query.astream_copy` with its options)
CopyStream = Callable[[psycopg.AsyncConnection], AsyncIterator[CopyBatch]]
#: opens the connection a blocking stream runs on (``RunContext.aconnect``; ``partial(AsyncConnection.connect, url)``)
Connect = Callable[[], Coroutine[Any, Any, psycopg.AsyncConnection]]


def stream_select_blocking(connect: Connect, plan: QueryPlan, caller: Caller, *,
                           timeout: float | None) -> Iterator[bytes]:
    """Run ``plan`` for ``caller`` in a thread with no event loop (job runners, tests, benchmarks):
    the one COPY stream of :func:`stream_select`, on an event loop of this generator's own over the
    connection ``connect`` opens (``RunContext.aconnect``, so a job's cancel reaches it), encoded
    in this thread. The connection is closed at the end."""
    writer, copy = _prepare(plan, caller, timeout)
    with asyncio.Runner() as loop:
        conn = loop.run(connect())
        try:
            chunks = writer.astream(copy(conn), maxrec=plan.maxrec, offload=False)
            try:
                while (chunk := loop.run(anext(chunks, None))) is not None:
                    yield chunk
            finally:
                loop.run(chunks.aclose())
        finally:
            loop.run(conn.close())


async def stream_select(pool: AsyncConnectionPool, plan: QueryPlan, caller: Caller, *,
                        timeout: float | None) -> AsyncIterator[bytes]:
    """Run ``plan`` for ``caller``; the result stream, already started (early failures raise here)."""
    writer, copy = _prepare(plan, caller, timeout)

    async def body() -> AsyncIterator[bytes]:
        # aclosing: an early stop (client gone) rolls back before the connection is pooled again
        async with pool.connection() as conn, aclosing(writer.astream(copy(conn), maxrec=plan.maxrec)) as chunks:
            async for chunk in chunks:
                yield chunk

    return await prime(body())


async def prime(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Wait for the first chunk, so errors before any output raise here; then all chunks.

    The returned iterator closes ``chunks`` when it is closed or exhausted.
    """
    try:
        first = await anext(chunks)
    except BaseException:
        with contextlib.suppress(Exception):
            await chunks.aclose()  # type: ignore[attr-defined]
        raise

    async def replay() -> AsyncIterator[bytes]:
        try:
            yield first
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]

    return replay()
