"""Row-level security of the published tables, checked in the database itself."""

from __future__ import annotations

import psycopg
import pytest

from db.ddl import ACCESS_POLICY, QUERY_ROLE, access_ddl
from db.session import setup_statement
from schemas import load_schemas

PROTECTED = [t for d in load_schemas() for t in d.tables if t.access_column]


def test_every_table_tied_to_a_survey_is_protected(conn: psycopg.Connection) -> None:
    assert {t.qualified_name for t in PROTECTED} >= {
        "ivoa.obscore", "datasets.surveys", "compactsources.band70um", "compactsources.sed_view_final"}
    for table in PROTECTED:
        schema = "tap_schema" if table.schema_name == "TAP_SCHEMA" else table.schema_name
        enabled, policies = conn.execute(
            "SELECT c.relrowsecurity, array(SELECT polname FROM pg_policy WHERE polrelid = c.oid)"
            " FROM pg_class c WHERE c.oid = to_regclass(%s)", (f"{schema}.{table.name}",)).fetchone()
        assert enabled and policies == [ACCESS_POLICY], table.qualified_name
        # an up-to-date table gets no DDL (no lock) on the next migration
        assert access_ddl(table, True, True) == []


def _as_query_role(conn: psycopg.Connection, groups: list[str], query: str) -> list[tuple]:
    conn.execute(setup_statement(QUERY_ROLE, 30, conn.info.server_version, groups))
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.rollback()


@pytest.mark.parametrize(("groups", "visible"), [([], False), (["other"], False), (["survey-team"], True),
                                                 (["x", "survey-team"], True)])
def test_rows_follow_the_callers_groups(database, groups, visible) -> None:
    with psycopg.connect(database.url) as conn:
        owner = conn.execute("SELECT count(*) FROM ivoa.obscore WHERE obs_collection = 'MeerKAT-private'").fetchone()
        assert owner[0] > 0
        seen = _as_query_role(conn, groups, "SELECT count(*) FROM ivoa.obscore "
                                            "WHERE obs_collection = 'MeerKAT-private'")
        assert seen[0][0] == (owner[0] if visible else 0)
        # the policies themselves are not readable by the query role
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            _as_query_role(conn, groups, "SELECT * FROM vlkb.survey_policies")


def test_spatial_conditions_keep_their_index_under_row_level_security(database) -> None:
    # PostgreSQL only uses an index for a leakproof condition on a table with row-level
    # security; with sequential scans disabled, an index condition in the plan proves it.
    query = ("EXPLAIN SELECT designation FROM compactsources.band70um "
             "WHERE pos_gal <@ scircle(spoint(radians(0.5), radians(0.1)), radians(0.05))")
    with psycopg.connect(database.url) as conn:
        conn.execute(setup_statement(QUERY_ROLE, 30, conn.info.server_version, []))
        conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(r[0] for r in conn.execute(query).fetchall())
        conn.rollback()
    assert "Index Cond: (pos_gal <@" in plan and "COALESCE((survey = ANY" in plan, plan
