"""Persistent user tables in SQL: the registry, the tables themselves, their policies and TAP_SCHEMA rows.

A user table lives in its owner's schema ``user_<name>`` (the schema given to one user in
``vlkb.user_schemas``) and has one row in ``vlkb.user_tables`` (migration 0005): owner, groups
it is shared with, declaration (``schemas.Table`` as JSON) and size. Writes here run as the
service (the owner of every user table), in the caller's transaction; reads made for a caller
(the tables they may see: :func:`visible_tables`) run in the caller's session of
:mod:`db.session`, where the row-level security of ``db/sql/access.sql`` applies the one rule:
the owner, or a member of a group the table is shared with. Every user table carries the policy
:data:`POLICY`, which defers to that rule, and so do its rows in ``TAP_SCHEMA``.

No protocol rules here (names, quotas, formats: ``vo/usertables.py``); this module only moves
declarations and rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from db.ddl import QUERY_ROLE, index_ddl, table_ddl
from db.load import copy_columns
from db.tap_schema import column_rows
from schemas import Index, Table

__all__ = [
    "POLICY", "UserTable", "add_index", "apply_access", "claim_schema", "copy_text", "create_table",
    "drop_table", "find", "load_columns", "lock_owner", "set_groups", "usage", "visible_tables",
]

#: the row-level security policy every user table carries
POLICY = "vlkb_user_table_access"
#: TAP_SCHEMA tables whose user-table rows follow the rule, with the function that names what to hide
_TAP_SCHEMA_POLICIES = (
    ("schemas", "schema_name", "vlkb_hidden_user_schemas"),
    ("tables", "table_name", "vlkb_hidden_user_tables"),
    ("columns", "table_name", "vlkb_hidden_user_tables"),
)


@dataclass(frozen=True)
class UserTable:
    """One user table as the registry holds it."""

    decl: Table
    owner: str
    read_groups: tuple[str, ...]
    nrows: int
    nbytes: int

    @property
    def schema_name(self) -> str:
        return self.decl.schema_name

    @property
    def name(self) -> str:
        return self.decl.name


def _ident(decl: Table) -> sql.Identifier:
    return sql.Identifier(decl.schema_name, decl.name)


def apply_access(conn: psycopg.Connection) -> None:
    """Row-level security on the registry and TAP_SCHEMA for the query role (idempotent; after :func:`db.ddl.apply`).

    The query role reads ``vlkb.user_tables`` through the rule (a caller's session lists what it
    may read) and sees the TAP_SCHEMA rows of the user tables it may read, and of no other.
    """
    role = sql.Identifier(QUERY_ROLE)
    if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (QUERY_ROLE,)).fetchone():
        return
    with conn.transaction():
        conn.execute("ALTER TABLE vlkb.user_tables ENABLE ROW LEVEL SECURITY")
        conn.execute(sql.SQL("DROP POLICY IF EXISTS {} ON vlkb.user_tables").format(sql.Identifier(POLICY)))
        conn.execute(sql.SQL(
            "CREATE POLICY {} ON vlkb.user_tables AS PERMISSIVE FOR SELECT TO {}"
            " USING (vlkb_may_read_user_table(owner, read_groups))").format(sql.Identifier(POLICY), role))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA vlkb TO {}").format(role))
        conn.execute(sql.SQL("GRANT SELECT ON vlkb.user_tables TO {}").format(role))
        for fn in ("vlkb_user_table_readable(text, text)", "vlkb_hidden_user_tables()",
                   "vlkb_hidden_user_schemas()"):
            conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(sql.SQL(fn), role))
        for table, column, hidden in _TAP_SCHEMA_POLICIES:
            qname = sql.Identifier("tap_schema", table)
            conn.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(qname))
            conn.execute(sql.SQL("DROP POLICY IF EXISTS {} ON {}").format(sql.Identifier(POLICY), qname))
            # (SELECT ...): an InitPlan, the hidden names computed once per query
            conn.execute(sql.SQL(
                "CREATE POLICY {} ON {} AS PERMISSIVE FOR SELECT TO {}"
                " USING (NOT coalesce({} = ANY ((SELECT {}())::text[]), false))").format(
                    sql.Identifier(POLICY), qname, role, sql.Identifier(column), sql.Identifier(hidden)))


def claim_schema(conn: psycopg.Connection, schema: str, owner: str) -> str | None:
    """Give ``schema`` to ``owner`` (creating it) unless another user has it; that user's name if so."""
    conn.execute("INSERT INTO vlkb.user_schemas (schema_name, owner) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                 (schema, owner))
    row = conn.execute("SELECT owner FROM vlkb.user_schemas WHERE schema_name = %s", (schema,)).fetchone()
    assert row is not None  # inserted above, or there already
    if row[0] != owner:
        return str(row[0])
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), sql.Identifier(QUERY_ROLE)))
    return None


def lock_owner(conn: psycopg.Connection, owner: str) -> None:
    """Serialise one owner's writes (the quota is checked and spent in one transaction)."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('vlkb.user_tables'), hashtext(%s))", (owner,))


def usage(conn: psycopg.Connection, owner: str) -> tuple[int, int]:
    """(rows, bytes) the user tables of ``owner`` hold now."""
    row = conn.execute("SELECT coalesce(sum(nrows), 0), coalesce(sum(nbytes), 0) FROM vlkb.user_tables"
                       " WHERE owner = %s", (owner,)).fetchone()
    assert row is not None  # an aggregate returns one row
    return int(row[0]), int(row[1])


def _entry(row: Sequence[Any]) -> UserTable:
    return UserTable(Table.model_validate(row[0]), row[1], tuple(row[2]), int(row[3]), int(row[4]))


_COLUMNS = "decl, owner, read_groups, nrows, nbytes"


def find(conn: psycopg.Connection, schema: str, name: str) -> UserTable | None:
    """The registry entry of ``schema.name`` (as the service: no access rule; for writes)."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM vlkb.user_tables WHERE schema_name = %s AND table_name = %s",
                       (schema, name)).fetchone()
    return None if row is None else _entry(row)


def _visible_query(schema: str | None, name: str | None) -> tuple[str, list[str]]:
    where, args = "", []
    if schema is not None and name is not None:
        where, args = " WHERE schema_name = %s AND table_name = %s", [schema, name]
    return f"SELECT {_COLUMNS} FROM vlkb.user_tables{where} ORDER BY schema_name, table_name", args


async def visible_tables(conn: psycopg.AsyncConnection, schema: str | None = None,
                         name: str | None = None) -> list[UserTable]:
    """The user tables the caller of this session may read (row-level security decides), optionally one."""
    cur = await conn.execute(*_visible_query(schema, name))
    return [_entry(r) for r in await cur.fetchall()]


def visible_tables_blocking(conn: psycopg.Connection, schema: str | None = None,
                            name: str | None = None) -> list[UserTable]:
    """:func:`visible_tables` over a blocking connection (job runners)."""
    return [_entry(r) for r in conn.execute(*_visible_query(schema, name)).fetchall()]


def create_table(conn: psycopg.Connection, decl: Table, owner: str, read_groups: Sequence[str]) -> None:
    """Create ``decl`` (in its owner's claimed schema) with its access policy, registry and TAP_SCHEMA rows."""
    qname = _ident(decl)
    for stmt in table_ddl(decl):
        conn.execute(stmt)
    conn.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(qname))
    conn.execute(sql.SQL(
        "CREATE POLICY {} ON {} AS PERMISSIVE FOR SELECT TO {} USING ((SELECT vlkb_user_table_readable({}, {})))"
    ).format(sql.Identifier(POLICY), qname, sql.Identifier(QUERY_ROLE), sql.Literal(decl.schema_name),
             sql.Literal(decl.name)))
    conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(qname, sql.Identifier(QUERY_ROLE)))
    conn.execute("INSERT INTO vlkb.user_tables (schema_name, table_name, owner, read_groups, decl)"
                 " VALUES (%s, %s, %s, %s, %s)",
                 (decl.schema_name, decl.name, owner, list(read_groups), Jsonb(decl.model_dump(mode="json"))))
    _tap_schema_rows(conn, decl)


def _tap_schema_rows(conn: psycopg.Connection, decl: Table) -> None:
    """(Re)write the TAP_SCHEMA rows of ``decl`` (and its schema's row)."""
    _drop_tap_schema_rows(conn, decl)
    conn.execute("INSERT INTO tap_schema.schemas (schema_name, utype, description, schema_index)"
                 " SELECT %s, NULL, %s, 1000"
                 " WHERE NOT EXISTS (SELECT 1 FROM tap_schema.schemas WHERE schema_name = %s)",
                 (decl.schema_name, f"tables of user {decl.schema_name.removeprefix('user_')}", decl.schema_name))
    conn.execute("INSERT INTO tap_schema.tables (schema_name, table_name, table_type, utype, description, table_index)"
                 " VALUES (%s, %s, 'table', NULL, %s, 1000)", (decl.schema_name, decl.qualified_name, decl.description))
    with conn.cursor() as cur:
        cur.executemany(
            'INSERT INTO tap_schema.columns (table_name, column_name, datatype, arraysize, xtype, "size",'
            " description, utype, unit, ucd, indexed, principal, std, column_index)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", column_rows(decl))


def _drop_tap_schema_rows(conn: psycopg.Connection, decl: Table) -> None:
    conn.execute("DELETE FROM tap_schema.columns WHERE table_name = %s", (decl.qualified_name,))
    conn.execute("DELETE FROM tap_schema.tables WHERE table_name = %s", (decl.qualified_name,))


def copy_text(conn: psycopg.Connection, decl: Table, text: bytes) -> None:
    """Append rows given as COPY text (one line a row, the published columns in order)."""
    names = sql.SQL(", ").join(sql.Identifier(c.name) for c in decl.published_columns)
    with conn.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(_ident(decl), names)) as copy:
        view = memoryview(text)
        for start in range(0, len(view), 1 << 20):
            copy.write(view[start:start + (1 << 20)])


def load_columns(conn: psycopg.Connection, decl: Table, data: Mapping[str, Any]) -> int:
    """Append rows given as column arrays (binary COPY, :func:`db.load.copy_columns`)."""
    return copy_columns(conn, decl, data)


def refresh_size(conn: psycopg.Connection, decl: Table) -> tuple[int, int]:
    """Count the rows and stored bytes of ``decl`` into the registry; (rows, bytes)."""
    row = conn.execute(sql.SQL("SELECT count(*), pg_total_relation_size({}) FROM {}").format(
        sql.Literal(f'"{decl.schema_name}"."{decl.name}"'), _ident(decl))).fetchone()
    assert row is not None  # an aggregate returns one row
    conn.execute("UPDATE vlkb.user_tables SET nrows = %s, nbytes = %s, updated = now()"
                 " WHERE schema_name = %s AND table_name = %s", (row[0], row[1], decl.schema_name, decl.name))
    return int(row[0]), int(row[1])


def drop_table(conn: psycopg.Connection, decl: Table) -> None:
    """Drop ``decl``, its registry row and its TAP_SCHEMA rows (one transaction: the caller's)."""
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(_ident(decl)))
    conn.execute("DELETE FROM vlkb.user_tables WHERE schema_name = %s AND table_name = %s",
                 (decl.schema_name, decl.name))
    _drop_tap_schema_rows(conn, decl)
    conn.execute("DELETE FROM tap_schema.schemas s WHERE schema_name = %s AND NOT EXISTS"
                 " (SELECT 1 FROM vlkb.user_tables u WHERE u.schema_name = s.schema_name)", (decl.schema_name,))


def set_groups(conn: psycopg.Connection, decl: Table, groups: Sequence[str]) -> None:
    """Share ``decl`` read-only with exactly ``groups`` (none: private to its owner)."""
    conn.execute("UPDATE vlkb.user_tables SET read_groups = %s, updated = now()"
                 " WHERE schema_name = %s AND table_name = %s", (list(groups), decl.schema_name, decl.name))


def add_index(conn: psycopg.Connection, old: Table, new: Table, index: Index) -> None:
    """Add the columns ``new`` has beyond ``old`` (a generated point column) and ``index``; record ``new``
    with ``index`` among its indexes (TAP_SCHEMA and VOSI flag the columns it serves)."""
    qname = _ident(new)
    have = {c.name for c in old.columns}
    for col in new.columns:
        if col.name not in have:
            # the expression is built by vo/usertables.py from checked column names, each delimited
            conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN {} {} GENERATED ALWAYS AS ({}) STORED").format(
                qname, sql.Identifier(col.name), sql.SQL(col.info.pg), sql.SQL(col.generated or "NULL")))
    for _, stmt in index_ddl(new.model_copy(update={"indexes": [index]}), set()):
        conn.execute(stmt)
    new = new.model_copy(update={"indexes": [*new.indexes, index]})
    conn.execute(sql.SQL("ANALYZE {}").format(qname))
    conn.execute("UPDATE vlkb.user_tables SET decl = %s, updated = now() WHERE schema_name = %s AND table_name = %s",
                 (Jsonb(new.model_dump(mode="json")), new.schema_name, new.name))
    _tap_schema_rows(conn, new)
