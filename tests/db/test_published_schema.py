"""The database matches the declarations: tables, columns, GiST indexes, TAP_SCHEMA rows."""

from __future__ import annotations

import json

import psycopg

from db.ddl import QUERY_ROLE, pg_schema
from db.migrate import migrate
from schemas import published_tables

GEOMETRY = {"point", "circle", "polygon", "path"}


def test_every_declared_column_exists_with_its_type(conn: psycopg.Connection) -> None:
    rows = conn.execute(
        "SELECT table_schema, table_name, column_name, udt_name FROM information_schema.columns"
    ).fetchall()
    actual = {(s, t, c): u for s, t, c, u in rows}
    udt = {"short": "int2", "int": "int4", "long": "int8", "float": "float4", "double": "float8",
           "boolean": "bool", "text": "text", "timestamp": "timestamp", "point": "spoint",
           "circle": "scircle", "polygon": "spoly", "path": "spath", "bytes": "bytea"}
    for table in published_tables():
        for col in table.columns:
            key = (pg_schema(table.schema_name), table.name, col.name)
            assert actual.get(key) == udt[col.type], key


def test_every_spatial_column_has_a_gist_index(conn: psycopg.Connection) -> None:
    indexes = conn.execute("SELECT schemaname, tablename, indexdef FROM pg_indexes").fetchall()
    for table in published_tables():
        for col in table.columns:
            if col.type in GEOMETRY and table.schema_name != "TAP_SCHEMA":
                assert any(
                    s == pg_schema(table.schema_name) and t == table.name and "USING gist" in d
                    and f"({col.name})" in d
                    for s, t, d in indexes
                ), f"{table.qualified_name}.{col.name} has no GiST index"


def test_tap_schema_matches_declarations(conn: psycopg.Connection) -> None:
    tables = dict(conn.execute("SELECT table_name, description FROM tap_schema.tables").fetchall())
    assert tables == {t.qualified_name: t.description for t in published_tables()}
    cols = conn.execute(
        "SELECT table_name, column_name, datatype, arraysize, xtype, unit, ucd, column_index"
        " FROM tap_schema.columns ORDER BY table_name, column_index"
    ).fetchall()
    for table in published_tables():
        mine = [c for c in cols if c[0] == table.qualified_name]
        assert [c[1] for c in mine] == [c.adql_name for c in table.published_columns]
        for row, col in zip(mine, table.published_columns, strict=True):
            assert row[2:7] == (col.info.datatype, col.votable_arraysize, col.info.xtype, col.unit, col.ucd)
    assert all(d.strip() for _, d in tables.items())


def test_internal_point_columns_exist_indexed_but_unpublished(conn: psycopg.Connection) -> None:
    """pos / pos_gal are created and GiST-indexed (above) but absent from TAP_SCHEMA; the coordinate
    columns they are computed from are flagged as indexed instead."""
    listed = {(t, c) for t, c in conn.execute("SELECT table_name, column_name FROM tap_schema.columns").fetchall()}
    indexed = {(t, c) for t, c in conn.execute(
        "SELECT table_name, column_name FROM tap_schema.columns WHERE indexed = 1").fetchall()}
    internal = [(t, c) for t in published_tables() for c in t.columns if not c.published]
    # the stored DALI forms of polygons and paths are internal too (tests/vo/test_stored_dali.py)
    for table, col in internal:
        if col.name.endswith(("_dali_bin", "_dali_text")):
            assert (table.qualified_name, col.name) not in listed
    internal = [(t, c) for t, c in internal if not c.name.endswith(("_dali_bin", "_dali_text"))]
    assert {c.name for _, c in internal} == {"pos", "pos_gal"}
    for table, col in internal:
        assert (table.qualified_name, col.name) not in listed
        assert col.generated is not None
        sources = [name for name in ("ra", "dec", "glon", "glat", "glonft", "glatft", "glon_cen", "glat_cen")
                   if f"radians({name})" in col.generated]
        assert len(sources) == 2 and all((table.qualified_name, s) in indexed for s in sources), (table.name, col)
    assert ("compactsources.band70um", "ra") in indexed and ("compactsources.band70um", "flux") not in indexed


def test_migrate_is_idempotent(database, conn: psycopg.Connection) -> None:
    before = conn.execute("SELECT count(*) FROM compactsources.band70um").fetchone()[0]
    conn.rollback()
    migrate(database.url)
    migrate(database.url)
    assert conn.execute("SELECT count(*) FROM compactsources.band70um").fetchone()[0] == before
    assert conn.execute("SELECT count(*) FROM tap_schema.tables").fetchone()[0] == len(published_tables())


def test_up_to_date_tables_get_no_ddl(conn: psycopg.Connection) -> None:
    from db.ddl import _current, table_ddl

    for table in published_tables():
        assert table_ddl(table, *_current(conn, table)) == [], table.qualified_name


def test_query_role_reads_published_schemas_only(conn: psycopg.Connection) -> None:
    """The query role reads the published schemas; of the internal schema only the dataset files
    table, and that under the same row-level security as the published tables."""
    conn.execute(f"SET ROLE {QUERY_ROLE}")
    assert conn.execute("SELECT count(*) FROM ivoa.obscore").fetchone()[0] >= 0
    for internal in ("vlkb.jobs", "vlkb.job_results", "vlkb.survey_policies", "vlkb.alembic_version"):
        try:
            conn.execute(f"SELECT count(*) FROM {internal}")
        except (psycopg.errors.InsufficientPrivilege, psycopg.errors.UndefinedTable):
            conn.rollback()
            conn.execute(f"SET ROLE {QUERY_ROLE}")
        else:
            raise AssertionError(f"the query role can read {internal}")


def test_query_role_sees_dataset_files_of_readable_surveys_only(conn: psycopg.Connection) -> None:
    restricted = conn.execute("SELECT survey, groups[1] FROM vlkb.survey_policies WHERE groups <> '{}' "
                              "ORDER BY survey LIMIT 1").fetchone()
    assert restricted is not None
    survey, group = restricted
    owner_count = conn.execute("SELECT count(*) FROM vlkb.datasets WHERE survey = %s", (survey,)).fetchone()[0]
    total = conn.execute("SELECT count(*) FROM vlkb.datasets").fetchone()[0]
    assert owner_count > 0
    for groups, want_restricted in (([], 0), (["someone-else"], 0), ([group], owner_count)):
        conn.execute("SELECT set_config('vlkb.groups', %s, false)", (json.dumps(groups),))
        conn.execute(f"SET ROLE {QUERY_ROLE}")
        got = conn.execute("SELECT count(*) FROM vlkb.datasets WHERE survey = %s", (survey,)).fetchone()[0]
        seen = conn.execute("SELECT count(*) FROM vlkb.datasets").fetchone()[0]
        conn.execute("RESET ROLE")
        assert got == want_restricted, groups
        assert seen == total - owner_count + want_restricted, groups


def test_demo_has_enough_catalogue_rows_and_a_restricted_survey(conn: psycopg.Connection) -> None:
    total = 0
    for table in published_tables():
        if table.schema_name == "compactsources":
            total += conn.execute(f"SELECT count(*) FROM compactsources.{table.name}").fetchone()[0]
    assert total >= 100_000
    restricted = conn.execute("SELECT count(*) FROM vlkb.survey_policies WHERE groups <> '{}'").fetchone()[0]
    assert restricted >= 1
