"""DDL of the published schemas, generated from the declarations in ``schemas/``.

Published tables are not Alembic-managed: their single source of truth is the YAML
declaration, and :func:`apply` makes the database match it idempotently (creates schemas,
tables, missing columns and indexes; never drops anything). The internal schema ``vlkb``
(jobs, policies, dataset files) is Alembic's (``db/migrations``).

It also creates ``vlkb_tap``, the role ADQL queries run as (``SET LOCAL ROLE``): it may read
the published schemas and nothing else (ARCHITECTURE decision 2).
"""

from __future__ import annotations

import logging

import psycopg
from psycopg import sql

from schemas import Column, Table, load_schemas

__all__ = ["QUERY_ROLE", "apply", "pg_schema", "table_ddl"]

log = logging.getLogger(__name__)

#: The role ADQL queries run as.
QUERY_ROLE = "vlkb_tap"


def pg_schema(declared: str) -> str:
    """The PostgreSQL schema name of a declared schema (``TAP_SCHEMA`` is stored as ``tap_schema``)."""
    return declared.lower()


def _column_def(col: Column) -> sql.Composable:
    parts: list[sql.Composable] = [sql.Identifier(col.name), sql.SQL(col.info.pg)]
    if col.generated:
        # The expression is trusted package data, never user input.
        parts.append(sql.SQL("GENERATED ALWAYS AS ({}) STORED").format(sql.SQL(col.generated)))
    if not col.nullable:
        parts.append(sql.SQL("NOT NULL"))
    return sql.SQL(" ").join(parts)


def _qualified(table: Table) -> sql.Composable:
    return sql.Identifier(pg_schema(table.schema_name), table.name)


def table_ddl(table: Table) -> list[sql.Composable]:
    """Statements that create ``table`` or add what it lacks, indexes and comments included."""
    qname = _qualified(table)
    defs = [_column_def(c) for c in table.columns]
    if table.primary_key:
        defs.append(sql.SQL("PRIMARY KEY ({})").format(sql.SQL(", ").join(map(sql.Identifier, table.primary_key))))
    stmts: list[sql.Composable] = [
        sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(qname, sql.SQL(", ").join(defs))
    ]
    stmts += [
        sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {}").format(qname, _column_def(c))
        for c in table.columns
    ]
    for idx in table.indexes:
        name = f"{pg_schema(table.schema_name)}_{table.name}_{'_'.join(idx.columns)}_idx"[:63]
        stmts.append(
            sql.SQL("CREATE {}INDEX IF NOT EXISTS {} ON {} USING {} ({})").format(
                sql.SQL("UNIQUE " if idx.unique else ""),
                sql.Identifier(name),
                qname,
                sql.SQL(idx.method),
                sql.SQL(", ").join(map(sql.Identifier, idx.columns)),
            )
        )
    stmts.append(sql.SQL("COMMENT ON TABLE {} IS {}").format(qname, sql.Literal(table.description)))
    stmts += [
        sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(qname, sql.Identifier(c.name), sql.Literal(c.description))
        for c in table.columns
    ]
    return stmts


def _ensure_query_role(conn: psycopg.Connection) -> bool:
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (QUERY_ROLE,)).fetchone()
    if exists:
        return True
    try:
        with conn.transaction():
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(QUERY_ROLE)))
            conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(QUERY_ROLE)))
    except psycopg.errors.InsufficientPrivilege:
        log.warning("cannot create role %s: ask the DBA to create it and grant it to this user", QUERY_ROLE)
        return False
    return True


def apply(conn: psycopg.Connection) -> None:
    """Create or complete every published schema and table, and grant the query role read access."""
    has_role = _ensure_query_role(conn)
    for decl in load_schemas():
        schema = sql.Identifier(pg_schema(decl.name))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
        conn.execute(sql.SQL("COMMENT ON SCHEMA {} IS {}").format(schema, sql.Literal(decl.description)))
        for table in decl.tables:
            for stmt in table_ddl(table):
                conn.execute(stmt)
        if has_role:
            role = sql.Identifier(QUERY_ROLE)
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, role))
            conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(schema, role))
