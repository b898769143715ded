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
from importlib import resources

import psycopg
from psycopg import sql

from schemas import Column, Table, load_schemas

__all__ = ["ACCESS_POLICY", "QUERY_ROLE", "access_ddl", "apply", "index_ddl", "index_name", "pg_schema", "table_ddl"]

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


def index_name(table: Table, columns: list[str]) -> str:
    """The name of the declared index of ``table`` on ``columns``."""
    return f"{pg_schema(table.schema_name)}_{table.name}_{'_'.join(columns)}_idx"[:63]


def index_ddl(table: Table, present: set[str]) -> list[tuple[str, sql.Composed]]:
    """(name, CREATE INDEX statement) of each declared index of ``table`` not in ``present``."""
    return [
        (name, sql.SQL("CREATE {}INDEX IF NOT EXISTS {} ON {} USING {} ({})").format(
            sql.SQL("UNIQUE " if idx.unique else ""),
            sql.Identifier(name),
            _qualified(table),
            sql.SQL(idx.method),
            sql.SQL(", ").join(map(sql.Identifier, idx.columns)),
        ))
        for idx in table.indexes
        if (name := index_name(table, idx.columns)) not in present
    ]


def table_ddl(table: Table, existing: set[str] | None = None, indexes: set[str] | None = None,
              comments: dict[str, str | None] | None = None) -> list[sql.Composed]:
    """Statements that create ``table`` or add what it lacks, indexes and comments included.

    ``existing`` (column names), ``indexes`` (index names) and ``comments`` (column name, or
    "" for the table, to its current comment) describe what the database already has; only
    what is missing or different is emitted, so an up-to-date table takes no lock at all.
    """
    qname = _qualified(table)
    stmts: list[sql.Composed] = []
    if existing is None:
        defs = [_column_def(c) for c in table.columns]
        if table.primary_key:
            defs.append(sql.SQL("PRIMARY KEY ({})").format(sql.SQL(", ").join(map(sql.Identifier, table.primary_key))))
        stmts.append(sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(qname, sql.SQL(", ").join(defs)))
    else:
        stmts += [
            sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {}").format(qname, _column_def(c))
            for c in table.columns
            if c.name not in existing
        ]
    stmts += [stmt for _, stmt in index_ddl(table, indexes or set())]
    comments = comments or {}
    if comments.get("") != table.description:
        stmts.append(sql.SQL("COMMENT ON TABLE {} IS {}").format(qname, sql.Literal(table.description)))
    stmts += [
        sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(qname, sql.Identifier(c.name), sql.Literal(c.description))
        for c in table.columns
        if comments.get(c.name) != c.description
    ]
    return stmts


def _current(conn: psycopg.Connection, table: Table) -> tuple[set[str] | None, set[str], dict[str, str | None]]:
    """Columns, index names and comments ``table`` has now (columns None when it does not exist)."""
    schema = pg_schema(table.schema_name)
    row = conn.execute("SELECT to_regclass(%s)::oid", (f'"{schema}"."{table.name}"',)).fetchone()
    assert row is not None  # a SELECT without FROM returns exactly one row
    oid = row[0]
    if oid is None:
        return None, set(), {}
    cols = conn.execute(
        "SELECT attname, col_description(attrelid, attnum) FROM pg_attribute"
        " WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped", (oid,)
    ).fetchall()
    idx = conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = %s",
                       (schema, table.name)).fetchall()
    row = conn.execute("SELECT obj_description(%s, 'pg_class')", (oid,)).fetchone()
    assert row is not None  # a SELECT without FROM returns exactly one row
    comment = row[0]
    return {c for c, _ in cols}, {i for (i,) in idx}, {"": comment, **dict(cols)}


#: The row-level security policy of a table with an access column (see db/sql/access.sql).
ACCESS_POLICY = "vlkb_survey_access"


def access_ddl(table: Table, enabled: bool = False, has_policy: bool = False) -> list[sql.Composed]:
    """Statements that make the rows of ``table`` follow the survey access policies.

    Only for a table that declares an ``access_column``: row-level security on, and one
    SELECT policy for the query role that hides the rows of the surveys the caller may not
    read. The table's owner (the service itself: loaders, SIA/DataLink lookups that filter
    on their own) is not subject to it. ``enabled``/``has_policy`` describe the database, so
    an up-to-date table gets no statement.
    """
    if table.access_column is None or table.type != "table":
        return []
    qname = _qualified(table)
    stmts: list[sql.Composed] = []
    if not enabled:
        stmts.append(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(qname))
    if not has_policy:
        stmts.append(_policy(qname, table.access_column))
    return stmts


def _policy(qname: sql.Composable, column: str) -> sql.Composed:
    """The one access policy: the query role sees the rows whose survey ``column`` it may read."""
    # (SELECT ...) makes the hidden list an InitPlan: computed once per query, not per row.
    # NOT coalesce(...) rather than "<> ALL": the planner cannot know the list, and for a
    # column with one distinct value (a catalogue of one survey) it would estimate that
    # "<> unknown" keeps no row, then pick nested loops that turn a spatial join into
    # minutes; a generic boolean expression is estimated at one half instead.
    return sql.SQL(
        "CREATE POLICY {} ON {} AS PERMISSIVE FOR SELECT TO {} "
        "USING (NOT coalesce({} = ANY ((SELECT vlkb_hidden_surveys())::text[]), false))"
    ).format(sql.Identifier(ACCESS_POLICY), qname, sql.Identifier(QUERY_ROLE), sql.Identifier(column))


#: Internal tables that lookups made for a caller read (``db/datasets.py``), with their survey column.
#: They are not published (no ADQL names them: the allow-list holds published tables only) but
#: follow the same policy, so a lookup made in the caller's session needs no rule of its own.
_INTERNAL_READABLE = (("vlkb", "datasets", "survey"),)


def _internal_access(conn: psycopg.Connection) -> None:
    """Row-level security, the access policy and read access for the query role on the internal
    tables that caller-scoped lookups read."""
    role = sql.Identifier(QUERY_ROLE)
    for schema, name, column in _INTERNAL_READABLE:
        qname = sql.Identifier(schema, name)
        row = _access_state(conn, schema, name)
        if row is None:
            continue
        if not row[0]:
            conn.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(qname))
        if not row[1]:
            conn.execute(_policy(qname, column))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), role))
        conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(qname, role))


def _access_state(conn: psycopg.Connection, schema: str, name: str) -> tuple[bool, bool] | None:
    """Whether ``schema.name`` has row-level security on and the access policy; None: no such table."""
    row = conn.execute(
        "SELECT c.relrowsecurity, EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = %s)"
        " FROM pg_class c WHERE c.oid = to_regclass(%s)",
        (ACCESS_POLICY, f'"{schema}"."{name}"'),
    ).fetchone()
    return (bool(row[0]), bool(row[1])) if row else None


#: The functions behind pgSphere's indexable operators (its operator classes' members) that are
#: not yet LEAKPROOF.
_PGSPHERE_INDEX_FUNCTIONS = """
SELECT DISTINCT p.oid::regprocedure::text
FROM pg_amop a
JOIN pg_operator o ON o.oid = a.amopopr
JOIN pg_proc p ON p.oid = o.oprcode
JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pg_sphere'
WHERE NOT p.proleakproof
ORDER BY 1
"""


def spatial_functions_not_leakproof(conn: psycopg.Connection) -> list[str]:
    """pgSphere's index operator functions still not LEAKPROOF (for ``vlkb check``)."""
    return [str(r[0]) for r in conn.execute(_PGSPHERE_INDEX_FUNCTIONS).fetchall()]


def _leakproof_spatial_operators(conn: psycopg.Connection) -> None:
    """Let spatial conditions use their GiST indexes on tables with row-level security.

    PostgreSQL evaluates a row-level security condition before any condition of the query
    that is not LEAKPROOF (it could reveal hidden rows through an error), and so cannot use
    an index for it: a cone search over a 10 million row catalogue goes from milliseconds to
    seconds. pgSphere's indexable operators (containment, overlap, equality of points, circles,
    polygons, boxes) compute a boolean from two valid values and raise no data-dependent
    error, which is what LEAKPROOF promises, but the extension does not declare it. Only a
    superuser may; without one the service still works, slower, and says so.
    """
    functions = [row[0] for row in conn.execute(_PGSPHERE_INDEX_FUNCTIONS).fetchall()]
    # the circle of a cross-match (db/sql/adql_functions.sql): it never raises, so joins on a
    # table with row-level security keep their GiST index (recreated, hence re-marked, each time)
    functions += [row[0] for row in conn.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.proname = 'vlkb_join_circle' AND NOT p.proleakproof")]
    if not functions:
        return
    row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    assert row is not None  # the connected role is always in pg_roles
    superuser = row[0]
    if not superuser:
        log.warning("pgSphere operators are not LEAKPROOF and this user cannot mark them: spatial conditions "
                    "on tables with access policies will not use their indexes; see docs/auth.md")
        return
    with conn.transaction():
        for fn in functions:
            conn.execute(sql.SQL("ALTER FUNCTION {} LEAKPROOF").format(sql.SQL(fn)))
    log.info("marked %d pgSphere operator functions LEAKPROOF", len(functions))


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
    """Create or complete every published schema and table, and grant the query role read access.

    Also (re)creates the SQL functions translated ADQL calls (``db/sql/adql_functions.sql``), the
    access rules (``access.sql``) and the triggers announcing changes of access (``access_notify.sql``).
    """
    has_role = _ensure_query_role(conn)
    # pgSphere and the ADQL functions live in public, which every role's search_path has
    # ("$user" comes first and may name one of our schemas).
    ext = conn.execute(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
        " WHERE e.extname = 'pg_sphere'"
    ).fetchone()
    if ext and ext[0] != "public":
        conn.execute("ALTER EXTENSION pg_sphere SET SCHEMA public")
    conn.execute("SET search_path TO public")
    for script in ("adql_functions.sql", "access.sql"):
        conn.execute((resources.files(__package__) / "sql" / script).read_text(encoding="utf-8"))
    _leakproof_spatial_operators(conn)
    if has_role:
        conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION vlkb_hidden_surveys() TO {}").format(
            sql.Identifier(QUERY_ROLE)))
    for decl in load_schemas():
        schema = sql.Identifier(pg_schema(decl.name))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
        conn.execute(sql.SQL("COMMENT ON SCHEMA {} IS {}").format(schema, sql.Literal(decl.description)))
        for table in decl.tables:
            for stmt in table_ddl(table, *_current(conn, table)):
                conn.execute(stmt)
            state = _access_state(conn, pg_schema(table.schema_name), table.name) or (False, False)
            for stmt in access_ddl(table, *state):
                conn.execute(stmt)
        if has_role:
            role = sql.Identifier(QUERY_ROLE)
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, role))
            conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(schema, role))
    if has_role:
        _internal_access(conn)
    # the lookups' change announcements need the published ivoa.obscore (created above)
    conn.execute((resources.files(__package__) / "sql" / "access_notify.sql").read_text(encoding="utf-8"))
