"""Load a published table through a staging table: append, or replace atomically.

The rows are first copied (:func:`db.load.copy_columns`, binary COPY) into a temporary
staging table holding the loaded columns and each row's position in its file (``_row``), so
checks that need the database (keys already in the table) can name the file row, and the
published table is touched only at the end, by one ``INSERT ... SELECT`` in the caller's
transaction:

- **append** inserts the staged rows; readers keep seeing the old rows until the commit
  (MVCC), and are never blocked;
- **replace** builds the new table beside the published one (:func:`build_shadow`: an
  unpublished copy of its columns, filled from the stage, then its indexes, primary key and
  access policy built in bulk, which is much faster than maintaining them row by row) and
  commits it with the load; then :func:`swap` puts it in the published table's place in one
  short transaction. Readers see the whole old table until the swap commits and the whole new
  one after it: the new rows were committed before the swap, so even a query whose snapshot
  predates the swap (it waited for the swap's lock) sees them. (``TRUNCATE``, or filling the
  new table in the swap's own transaction, would show such a query an empty table.) The swap
  waits at most ``lock_timeout`` for running readers and tries again, so readers are never
  held up for longer than that. A table that views or foreign keys depend on cannot be
  swapped: it is replaced by ``DELETE`` and ``INSERT`` in the load's transaction (:func:`publish`).

After the commit, :func:`tidy` refreshes the statistics and, after a replace in place, reclaims
the old rows' space and rebuilds the indexes concurrently. No protocol rules here: this module
only moves rows; which rows are good is the caller's business (``vo/ingest/catalog.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import sql

from db.ddl import QUERY_ROLE, access_ddl, index_name, pg_schema, table_ddl
from db.load import copy_columns
from schemas import Column, Table

__all__ = [
    "ROW_COLUMN", "Stage", "build_shadow", "can_swap", "create_stage", "drop_shadow", "drop_staged", "duplicate_keys",
    "existing_keys", "publish", "stage_rows", "swap", "tidy",
]

log = logging.getLogger(__name__)

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


def _select_staged(stage: Stage) -> sql.Composed:
    """``SELECT`` of the staged columns cast to their published types, in COPY order."""
    select = sql.SQL(", ").join(
        sql.SQL("{}::{}").format(sql.Identifier(c.name), sql.SQL(c.info.pg)) if c.type in _CAST
        else sql.Identifier(c.name)
        for c in stage.columns
    )
    # no ORDER BY: a sort of millions of rows for nothing, the stage is scanned in COPY order
    return sql.SQL("SELECT {} FROM {}").format(select, stage.ident)


def _names(stage: Stage) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(c.name) for c in stage.columns)


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
    cur = conn.execute(sql.SQL("INSERT INTO {} ({}) {}").format(target, _names(stage), _select_staged(stage)))
    return cur.rowcount


def _shadow(table: Table) -> Table:
    """The declaration of ``table``'s unpublished replacement (same schema, a name no table declares)."""
    return table.model_copy(update={"name": f"_vlkb_next_{table.name}"[:63]})


def _pkey(table: Table) -> str:
    """The name of ``table``'s primary key (and its index), as PostgreSQL names it for a short name."""
    return f"{table.name}_pkey"[:63]


def can_swap(conn: psycopg.Connection, table: Table) -> bool:
    """Whether ``table`` can be replaced by :func:`swap`: no view or foreign key depends on it."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid"
        "               WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = t.oid AND r.ev_class <> t.oid)"
        " OR EXISTS (SELECT 1 FROM pg_constraint c WHERE c.confrelid = t.oid)"
        " FROM (SELECT to_regclass(%s) AS oid) t",
        (f'"{pg_schema(table.schema_name)}"."{table.name}"',),
    ).fetchone()
    return row is not None and row[0] is False


def build_shadow(conn: psycopg.Connection, stage: Stage) -> int:
    """Fill the unpublished replacement of the staged table from the stage, in the load's transaction.

    Its columns are the published table's own (``LIKE``: types, defaults, generated columns,
    checks, comments); the rows go in first and the declared indexes, primary key and access
    policy are built after them, in bulk. Nobody but the service can read it until :func:`swap`
    grants it. Returns the number of rows.
    """
    table, shadow = stage.table, _shadow(stage.table)
    target = _target(shadow)
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(target))  # left by a load that died before its swap
    conn.execute(sql.SQL(
        "CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING CONSTRAINTS "
        "INCLUDING COMMENTS INCLUDING STORAGE)").format(target, _target(table)))
    rows = conn.execute(sql.SQL("INSERT INTO {} ({}) {}").format(target, _names(stage), _select_staged(stage))).rowcount
    if table.primary_key:
        conn.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY ({})").format(
            target, sql.Identifier(_pkey(shadow)), sql.SQL(", ").join(map(sql.Identifier, table.primary_key))))
    # the declared indexes and the table comment (the columns already carry theirs)
    comments = {"": None, **{c.name: c.description for c in shadow.columns}}
    for stmt in table_ddl(shadow, existing={c.name for c in shadow.columns}, comments=comments):
        conn.execute(stmt)
    for stmt in access_ddl(shadow):
        conn.execute(stmt)
    return rows


def drop_shadow(conn: psycopg.Connection, table: Table) -> None:
    """Drop the replacement of ``table`` that :func:`swap` could not put in place."""
    with conn.transaction():
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(_target(_shadow(table))))


def swap(conn: psycopg.Connection, table: Table, *, wait: float = 60.0, lock_timeout: float = 2.0) -> None:
    """Put the committed replacement (:func:`build_shadow`) in ``table``'s place, atomically.

    One short transaction: drop the published table, rename the replacement and its indexes to
    the published names, grant it to the query role. Each attempt waits at most ``lock_timeout``
    seconds for the readers of the old table (``ACCESS EXCLUSIVE``), so the readers queued behind
    it wait no longer than that; attempts go on for ``wait`` seconds, then the last
    ``LockNotAvailable`` is raised. ``conn`` must be idle (no transaction open).
    """
    schema, shadow = pg_schema(table.schema_name), _shadow(table)
    renames = [(index_name(shadow, idx.columns), index_name(table, idx.columns)) for idx in table.indexes]
    if table.primary_key:
        renames.append((_pkey(shadow), _pkey(table)))
    deadline, attempt = time.monotonic() + wait, 0
    while True:
        attempt += 1
        try:
            with conn.transaction():
                conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(
                    sql.Literal(f"{max(1, int(lock_timeout * 1000))}ms")))
                conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(_target(table)))
                conn.execute(sql.SQL("DROP TABLE {}").format(_target(table)))
                conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(_target(shadow), sql.Identifier(table.name)))
                for old, new in renames:
                    conn.execute(sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                        sql.Identifier(schema, old), sql.Identifier(new)))
                conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(_target(table), sql.Identifier(QUERY_ROLE)))
            return
        except psycopg.errors.LockNotAvailable:
            if time.monotonic() >= deadline:
                raise
            log.info("%s: readers still running, swap attempt %d", table.qualified_name, attempt)
            time.sleep(min(0.1 * attempt, 1.0))


def tidy(conn: psycopg.Connection, table: Table, *, replace: bool) -> None:
    """After a committed load: statistics, and for a replace in place (:func:`publish`) the space
    and index entries of the old rows.

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
