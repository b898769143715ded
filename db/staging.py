"""Load a published table through a staging table: append, or replace atomically.

The rows are first copied (:func:`db.load.copy_columns`, binary COPY) into a temporary
staging table holding the loaded columns and each row's position in its file (``_row``), so
checks that need the database (keys already in the table) can name the file row, and the
published table is touched only at the end, by one ``INSERT ... SELECT`` in the caller's
transaction:

- **append** inserts the staged rows; readers keep seeing the old rows until the commit
  (MVCC), and are never blocked;
- **replace** deletes the published rows and inserts the staged ones in the same
  transaction. Readers keep seeing the whole old table until the commit and the whole new
  one after it, and are never blocked. (``TRUNCATE`` would be faster but is not MVCC-safe: a
  query whose snapshot was taken before the commit would find the table empty.) The table
  itself is kept, so its row-level security policy, grants and comments are untouched.

After the commit, :func:`tidy` refreshes the statistics and, for a replace, reclaims the
old rows' space and rebuilds the indexes concurrently. No protocol rules here: this module
only moves rows; which rows are good is the caller's business (``vo/ingest/catalog.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import sql

from db.ddl import pg_schema
from db.load import copy_columns
from schemas import Column, Table

__all__ = [
    "ROW_COLUMN", "Stage", "create_stage", "drop_staged", "duplicate_keys", "existing_keys", "publish", "stage_rows",
    "tidy",
]

#: the staging column holding each row's 1-based position in its file
ROW_COLUMN = "_row"
#: declared types staged as text and cast by the server at publish (no binary COPY input)
_CAST = {"timestamp", "point", "circle", "polygon", "path"}


class Stage:
    """A temporary staging table for ``table`` holding ``columns`` (names of ``table``) and ``_row``."""

    def __init__(self, table: Table, columns: list[Column], decl: Table) -> None:
        self.table = table
        self.columns = columns
        self.decl = decl

    @property
    def ident(self) -> sql.Identifier:
        """The staging table's SQL name."""
        return sql.Identifier("pg_temp", self.decl.name)


def _target(table: Table) -> sql.Identifier:
    return sql.Identifier(pg_schema(table.schema_name), table.name)


def create_stage(conn: psycopg.Connection, table: Table, columns: list[str]) -> Stage:
    """Create (in the current transaction, dropped at its end) the staging table of ``table``.

    ``columns`` are the names of the columns that will be loaded; generated columns are
    refused (the server computes them). Geometry and timestamp columns are staged as text.
    """
    cols = [table.column(c) for c in columns]
    generated = [c.name for c in cols if c.generated]
    if generated:
        raise ValueError(f"{table.qualified_name}: {generated} are computed by the database and cannot be loaded")
    staged = [c.model_copy(update={"type": "text" if c.type in _CAST else c.type, "nullable": True,
                                   "generated": None}) for c in cols]
    row = Column(name=ROW_COLUMN, type="long", description="row of the file")
    decl = Table(name=f"_stage_{table.name}", description="staging", columns=[row, *staged], schema_name="pg_temp")
    defs = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.info.pg)) for c in decl.columns)
    conn.execute(sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(
        sql.Identifier(decl.name), defs))
    return Stage(table, cols, decl)


def stage_rows(conn: psycopg.Connection, stage: Stage, rows: Any, data: Mapping[str, Any]) -> int:
    """Copy rows (``data``: column name to array, ``rows``: their file positions) into the stage."""
    return copy_columns(conn, stage.decl, {ROW_COLUMN: rows, **data})


def existing_keys(conn: psycopg.Connection, stage: Stage) -> list[tuple[int, tuple[Any, ...]]]:
    """(file row, key) of the staged rows whose primary key the published table already holds."""
    key = stage.table.primary_key
    if not key or not all(k.lower() in {c.name.lower() for c in stage.columns} for k in key):
        return []
    on = sql.SQL(" AND ").join(sql.SQL("t.{0} = s.{0}").format(sql.Identifier(k)) for k in key)
    cols = sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(k)) for k in key)
    rows = conn.execute(sql.SQL("SELECT s.{}, {} FROM {} s JOIN {} t ON {} ORDER BY 1").format(
        sql.Identifier(ROW_COLUMN), cols, stage.ident, _target(stage.table), on)).fetchall()
    return [(int(r[0]), tuple(r[1:])) for r in rows]


def duplicate_keys(conn: psycopg.Connection, stage: Stage) -> list[tuple[int, int, tuple[Any, ...]]]:
    """(file row, first file row with that key, key) of the staged rows whose primary key repeats an earlier one."""
    key = stage.table.primary_key
    if not key or not all(k.lower() in {c.name.lower() for c in stage.columns} for k in key):
        return []
    keys = sql.SQL(", ").join(map(sql.Identifier, key))
    row = sql.Identifier(ROW_COLUMN)
    rows = conn.execute(sql.SQL(
        "SELECT {row}, first, {keys} FROM (SELECT {row}, {keys}, min({row}) OVER (PARTITION BY {keys}) AS first"
        " FROM {stage}) s WHERE {row} <> first ORDER BY {row}").format(row=row, keys=keys, stage=stage.ident)
    ).fetchall()
    return [(int(r[0]), int(r[1]), tuple(r[2:])) for r in rows]


def drop_staged(conn: psycopg.Connection, stage: Stage, rows: list[int]) -> None:
    """Forget staged rows (by file row) that must not be published."""
    if rows:
        conn.execute(sql.SQL("DELETE FROM {} WHERE {} = ANY(%s)").format(stage.ident, sql.Identifier(ROW_COLUMN)),
                     (rows,))


def publish(conn: psycopg.Connection, stage: Stage, *, replace: bool) -> int:
    """Insert the staged rows into the published table (after deleting its rows for ``replace``).

    Runs in the caller's transaction: nothing is visible to readers before its commit, and
    readers are never blocked (no ``ACCESS EXCLUSIVE`` lock is taken). Returns the number of
    rows inserted. Call :func:`tidy` after the commit.
    """
    target = _target(stage.table)
    if replace:
        # DELETE, not TRUNCATE: TRUNCATE is not MVCC-safe, and a query whose snapshot predates
        # the commit (it waited for the lock) would find the table empty.
        conn.execute(sql.SQL("DELETE FROM {}").format(target))
    names = sql.SQL(", ").join(sql.Identifier(c.name) for c in stage.columns)
    select = sql.SQL(", ").join(
        sql.SQL("{}::{}").format(sql.Identifier(c.name), sql.SQL(c.info.pg)) if c.type in _CAST
        else sql.Identifier(c.name)
        for c in stage.columns
    )
    # no ORDER BY: a sort of millions of rows for nothing, the stage is scanned in COPY order
    cur = conn.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(target, names, select, stage.ident))
    return cur.rowcount


def tidy(conn: psycopg.Connection, table: Table, *, replace: bool) -> None:
    """After a committed load: statistics, and for a replace the space and index entries of the old rows.

    ``VACUUM (ANALYZE)`` after a replace (the deleted rows' space becomes reusable), then
    ``REINDEX TABLE CONCURRENTLY`` (the indexes rebuilt without the dead entries, while readers
    go on using the old ones); ``ANALYZE`` after an append. Needs a connection outside any
    transaction; inside one, only ``ANALYZE`` is run.
    """
    target = _target(table)
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE or not replace:
        conn.execute(sql.SQL("ANALYZE {}").format(target))
        return
    autocommit = conn.autocommit
    conn.autocommit = True
    try:
        conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(target))
        conn.execute(sql.SQL("REINDEX TABLE CONCURRENTLY {}").format(target))
    finally:
        conn.autocommit = autocommit
