"""Temporary tables for TAP uploads: created, filled by ``COPY FROM STDIN`` and granted in the
query's own transaction.

A :class:`TempTable` lives in ``pg_temp`` and is created ``ON COMMIT DROP`` inside the
transaction that runs the query (``db/query.py``), which always ends in a rollback: the table
is gone when the connection goes back to its pool, whatever happened. It is created and
filled as the connection's own user, then ``SELECT`` is granted to the query role, so the role
needs no ``TEMPORARY`` privilege and can only read it.

Rows arrive as PostgreSQL ``COPY`` text (tab-separated, ``\\N`` for NULL), produced by the
caller (``vo/upload.py``); column types are trusted names from the ``schemas`` vocabulary.
This module knows SQL, not VOTable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql

__all__ = ["TempTable", "UploadLoadError", "aload_tables", "table_statements"]


class UploadLoadError(Exception):
    """PostgreSQL refused an uploaded value (a malformed timestamp, a latitude beyond 90 degrees)."""

    def __init__(self, label: str, message: str) -> None:
        super().__init__(f"{label}: {message}")
        self.label = label
        self.message = message


@dataclass(frozen=True)
class TempTable:
    """One uploaded table to create in ``pg_temp`` and fill."""

    #: the table's name in ``pg_temp`` (written by vlkb, e.g. ``tap_upload_0``)
    name: str
    #: (column name, PostgreSQL type) in order; names are quoted, so any text is safe
    columns: Sequence[tuple[str, str]]
    #: gives the rows as COPY text chunks (called once, when the table is filled)
    rows: Callable[[], Iterable[bytes]]
    #: what error messages call the table (``TAP_UPLOAD.mine``)
    label: str = ""


def table_statements(table: TempTable, grant_to: str | None) -> tuple[list[sql.Composed], sql.Composed]:
    """(statements to run before the COPY, the ``COPY ... FROM STDIN``) for ``table``."""
    ident = sql.Identifier("pg_temp", table.name)
    cols = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(pgtype)) for name, pgtype in table.columns
    )
    before = [sql.SQL("CREATE TEMPORARY TABLE {} ({}) ON COMMIT DROP").format(ident, cols)]
    if grant_to is not None:
        before.append(sql.SQL("GRANT SELECT ON {} TO {}").format(ident, sql.Identifier(grant_to)))
    names = sql.SQL(", ").join(sql.Identifier(name) for name, _ in table.columns)
    copy = sql.SQL("COPY {} ({}) FROM STDIN").format(ident, names)
    return before, copy


def _analyze(table: TempTable) -> sql.Composed:
    # Temporary tables get no autovacuum statistics: without them the planner guesses a size
    # and may pick a nested loop over a sequential scan of a big published table.
    return sql.SQL("ANALYZE {}").format(sql.Identifier("pg_temp", table.name))


def _load_error(table: TempTable, exc: psycopg.Error) -> Exception:
    """The data's fault (UploadLoadError) unless the connection or the server failed."""
    state = exc.sqlstate or ""
    if isinstance(exc, (psycopg.OperationalError, pgerrors.QueryCanceled)) or state.startswith(("08", "53", "57")):
        return exc
    primary = exc.diag.message_primary or str(exc).strip().splitlines()[0]
    return UploadLoadError(table.label or table.name, primary)


async def aload_tables(conn: psycopg.AsyncConnection, tables: Sequence[TempTable], *,
                       grant_to: str | None) -> None:
    """Create and fill ``tables`` in the transaction open on ``conn``."""
    for table in tables:
        before, copy = table_statements(table, grant_to)
        for stmt in before:
            await conn.execute(stmt)
        try:
            async with conn.cursor().copy(copy) as cp:
                for chunk in table.rows():
                    await cp.write(chunk)
        except psycopg.Error as exc:
            raise _load_error(table, exc) from exc
        await conn.execute(_analyze(table))
