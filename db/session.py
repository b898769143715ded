"""The caller's session: the one way any read on behalf of a caller starts.

A read runs in its own read-only transaction, as the query role (``SET LOCAL ROLE``,
ARCHITECTURE decision 2), with the caller's groups in ``vlkb.groups``, the caller's user name
in ``vlkb.user`` (the owner of user tables, issue 17) and a ``statement_timeout``. The
row-level security policies of the published tables, of ``vlkb.datasets`` and of the user
tables (``db/sql/access.sql``, :mod:`db.ddl`, :mod:`db.usertables`) read those: that is the only
definition of who sees what, and this module is the only place that sets it up. The
transaction always ends in a rollback.

:func:`setup_statement` is the set-up as one simple-protocol command (``db/query.py`` pipelines
it in front of its ``COPY``); :func:`caller_session` and :func:`caller_session_blocking` wrap a
connection for the short lookups (datasets, surveys, footprints) that need a cursor;
:func:`caller_fetch` runs one such lookup in a single round trip (the dataset lookup of every
cutout, issue 16).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg import pq, sql
from psycopg.rows import AsyncRowFactory
from psycopg_pool import AsyncConnectionPool

from db.ddl import QUERY_ROLE

__all__ = ["caller_fetch", "caller_session", "caller_session_blocking", "read_only_after", "setup_statement"]

Row = TypeVar("Row")

#: the statement timeout of a lookup (a dataset by DID, the survey list): seconds
LOOKUP_TIMEOUT = 30.0


def setup_statement(role: str | None, timeout: float | None, server_version: int = 150000,
                    groups: Sequence[str] = (), *, user: str | None = None, read_only: bool = True,
                    begin: bool = True, base_url: str | None = None) -> sql.Composed:
    """Start the caller's transaction and fix every setting the output formats depend on.

    ``groups`` are the caller's groups: the row-level security policies read them from
    ``vlkb.groups`` (``db/sql/access.sql``); ``user`` is the caller's name, in ``vlkb.user``
    (who owns user tables); None (and no groups) means anonymous.
    ``base_url`` is the public base URL the answer names the service by: ``vlkb_public_url``
    (``db/sql/adql_functions.sql``) reads it from ``vlkb.base_url`` to make the stored relative
    URLs absolute; None leaves them relative.

    ``extra_float_digits`` > 0 makes text output of floats the shortest exact form
    (PostgreSQL 12+), so text formats give back exactly the stored values. From PostgreSQL
    14 the backend also checks every second that the client is still there, so a long query
    whose client went away stops instead of running to its timeout. ``read_only=False``
    leaves the transaction writable, to create upload tables first (``db/upload.py``), after
    which :func:`read_only_after` switches to the query role. ``begin=False`` leaves the
    ``BEGIN`` to psycopg (``conn.transaction()``) and makes the transaction read-only instead.
    """
    if begin:
        first = sql.SQL("BEGIN READ ONLY" if read_only else "BEGIN")
    else:
        first = sql.SQL("SET TRANSACTION READ ONLY" if read_only else "SET TRANSACTION READ WRITE")
    parts: list[sql.Composable] = [
        first,
        sql.SQL("SET LOCAL client_encoding = 'UTF8'"),
        sql.SQL("SET LOCAL extra_float_digits = 1"),
        sql.SQL("SET LOCAL DateStyle = 'ISO, YMD'"),
        sql.SQL("SET LOCAL TimeZone = 'UTC'"),
        sql.SQL("SET LOCAL IntervalStyle = 'iso_8601'"),
    ]
    if server_version >= 140000:
        parts.append(sql.SQL("SET LOCAL client_connection_check_interval = 1000"))
    if timeout is not None:
        parts.append(sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(max(1, round(timeout * 1000)))))
    parts.append(sql.SQL("SET LOCAL \"vlkb.groups\" = {}").format(sql.Literal(json.dumps(list(groups)))))
    parts.append(sql.SQL("SET LOCAL \"vlkb.user\" = {}").format(sql.Literal(user or "")))
    if base_url:
        parts.append(sql.SQL("SET LOCAL \"vlkb.base_url\" = {}").format(sql.Literal(base_url)))
    if role is not None:
        parts.append(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
    return sql.SQL("; ").join(parts)


def read_only_after(role: str | None) -> sql.Composed:
    """Make the open transaction read-only (allowed after writes: only the reverse is refused)
    and switch to ``role``: what follows loading upload tables."""
    parts: list[sql.Composable] = [sql.SQL("SET TRANSACTION READ ONLY")]
    if role is not None:
        parts.append(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
    return sql.SQL("; ").join(parts)


@asynccontextmanager
async def caller_session(pool: AsyncConnectionPool, groups: Sequence[str], *, user: str | None = None,
                         timeout: float | None = LOOKUP_TIMEOUT) -> AsyncIterator[psycopg.AsyncConnection]:
    """A pooled connection inside the caller's read-only transaction, rolled back at the end."""
    async with pool.connection() as conn, conn.transaction(force_rollback=True):
        await conn.execute(setup_statement(QUERY_ROLE, timeout, conn.info.server_version, groups, user=user,
                                     begin=False))
        yield conn


async def caller_fetch(pool: AsyncConnectionPool, query: str, params: Mapping[str, Any],
                       row_factory: AsyncRowFactory[Row], groups: Sequence[str], *, user: str | None = None,
                       timeout: float | None = LOOKUP_TIMEOUT) -> list[Row]:
    """The rows of one read-only ``query`` (``%(name)s`` placeholders) in the caller's session, in
    one round trip to the database instead of four.

    :func:`caller_session` costs BEGIN, the set-up, the query and ROLLBACK, each a round trip
    (about 1 ms each on a busy machine: most of a small cutout's database time). Here the set-up
    (with its BEGIN), the query and the ROLLBACK go as one simple-protocol command, with the
    parameters bound by psycopg on the client side (its quoting of literals, as for any
    client-side cursor); only this function's callers' SQL text is ever sent, never a user's.
    The connection is in autocommit mode meanwhile so psycopg adds no BEGIN of its own; if the
    command fails part-way the transaction is rolled back before the connection is pooled again.
    """
    async with pool.connection() as conn:
        setup = setup_statement(QUERY_ROLE, timeout, conn.info.server_version, groups, user=user)
        command = sql.SQL("{}; {}; ROLLBACK").format(setup, sql.SQL(query))
        autocommit = conn.autocommit
        await conn.set_autocommit(True)
        try:
            async with psycopg.AsyncClientCursor(conn, row_factory=row_factory) as cur:
                await cur.execute(command, params)
                # one result per statement: the set-up's, the query's (the only one with rows), ROLLBACK's
                while cur.pgresult is not None and cur.pgresult.status != pq.ExecStatus.TUPLES_OK:
                    if not cur.nextset():
                        raise psycopg.ProgrammingError("the lookup returned no rows result")
                return await cur.fetchall()
        finally:
            if conn.info.transaction_status != pq.TransactionStatus.IDLE:
                await conn.rollback()
            await conn.set_autocommit(autocommit)


@contextmanager
def caller_session_blocking(conn: psycopg.Connection, groups: Sequence[str], *, user: str | None = None,
                            timeout: float | None = LOOKUP_TIMEOUT) -> Iterator[psycopg.Connection]:
    """:func:`caller_session` over a blocking connection the caller owns (job runners, in threads)."""
    with conn.transaction(force_rollback=True):
        conn.execute(setup_statement(QUERY_ROLE, timeout, conn.info.server_version, groups, user=user,
                                     begin=False))
        yield conn
