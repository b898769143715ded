"""Fill ``TAP_SCHEMA`` (TAP 1.1 section 4) from the published declarations.

The five tables are rewritten in one transaction, so a reader never sees a half-filled
TAP_SCHEMA. The rows of persistent user tables (``db/usertables.py``) are kept. Table names are
published qualified (``schema.table``), as TAP 1.1 recommends.
"""

from __future__ import annotations

import psycopg

from schemas import Table, load_schemas

__all__ = ["refresh", "column_rows"]


def column_rows(table: Table) -> list[tuple]:
    """The ``TAP_SCHEMA.columns`` rows of one table's published columns, in declaration order.

    Internal columns (the point columns behind the spatial indexes) are not listed; the
    published columns they are computed from are flagged as indexed.
    """
    indexed = table.indexed_columns()
    return [
        (
            table.qualified_name, c.adql_name, c.info.datatype, c.votable_arraysize, c.info.xtype,
            _size(c.votable_arraysize),
            c.description, c.utype, c.unit, c.ucd, int(c.name.lower() in indexed), int(c.principal),
            int(c.std), i + 1,
        )
        for i, c in enumerate(table.published_columns)
    ]


def _size(arraysize: str | None) -> int | None:
    """TAP 1.1 section 4.3: the deprecated "size" repeats a fixed arraysize (``"12"``, not ``"12*"`` or ``"*"``)."""
    return int(arraysize) if arraysize is not None and arraysize.isdigit() else None


def refresh(conn: psycopg.Connection) -> None:
    """Replace the content of TAP_SCHEMA with what the declarations say."""
    decls = load_schemas()
    with conn.transaction(), conn.cursor() as cur:
        for tap_table in ("key_columns", "keys"):
            cur.execute(f"DELETE FROM tap_schema.{tap_table}")
        # the rows of persistent user tables (db/usertables.py) stay: they are no declaration's
        user_tables = "SELECT schema_name || '.' || table_name FROM vlkb.user_tables"
        cur.execute(f"DELETE FROM tap_schema.columns WHERE table_name NOT IN ({user_tables})")
        cur.execute(f"DELETE FROM tap_schema.tables WHERE table_name NOT IN ({user_tables})")
        cur.execute("DELETE FROM tap_schema.schemas"
                    " WHERE schema_name NOT IN (SELECT schema_name FROM vlkb.user_tables)")
        cur.executemany(
            "INSERT INTO tap_schema.schemas (schema_name, utype, description, schema_index) VALUES (%s, %s, %s, %s)",
            [(d.name, d.utype, d.description, i + 1) for i, d in enumerate(decls)],
        )
        tables = [t for d in decls for t in d.tables]
        cur.executemany(
            "INSERT INTO tap_schema.tables (schema_name, table_name, table_type, utype, description, table_index)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            [(t.schema_name, t.qualified_name, t.type, t.utype, t.description, i + 1) for i, t in enumerate(tables)],
        )
        cur.executemany(
            'INSERT INTO tap_schema.columns (table_name, column_name, datatype, arraysize, xtype, "size",'
            " description, utype, unit, ucd, indexed, principal, std, column_index)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [row for t in tables for row in column_rows(t)],
        )
        for t in tables:
            for n, fk in enumerate(t.foreign_keys):
                key_id = f"{t.qualified_name}_fk{n + 1}"
                cur.execute(
                    "INSERT INTO tap_schema.keys (key_id, from_table, target_table, description, utype)"
                    " VALUES (%s, %s, %s, %s, NULL)",
                    (key_id, t.qualified_name, fk.target, fk.description),
                )
                cur.executemany(
                    "INSERT INTO tap_schema.key_columns (key_id, from_column, target_column) VALUES (%s, %s, %s)",
                    [(key_id, a, b) for a, b in fk.columns],
                )
