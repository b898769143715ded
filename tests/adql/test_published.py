"""The ViaLactea client's ADQL (shared/vialactea-client.md section 2) on the published tables.

Translated with the real catalog (schemas/*.yaml and the vlkb_ schema aliases) and run on
the migrated test database, after inserting a few rows in the test's transaction; the rows
are compared with plain SQL over the raw columns.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from schemas import Table, find_table
from tests.adql.conftest import AdqlDb
from vo.adql import Catalog, translate

BANDS = ["band70um", "band160um", "band250um", "band350um", "band500um", "band24um"]

#: (ADQL the client sends, the published table it reads)
CLIENT_QUERIES = [
    ("SELECT * FROM TAP_SCHEMA.tables", "TAP_SCHEMA.tables"),
    ("SELECT * FROM TAP_SCHEMA.columns", "TAP_SCHEMA.columns"),
    ("SELECT name, description, species, transition FROM datasets.surveys", "datasets.surveys"),
    ("SELECT name, species, transition FROM vlkb_datasets_public.surveys", "datasets.surveys"),
    ("SELECT name, species, transition FROM vlkb_radiocubes.surveys", "datasets.surveys"),
    *(
        (f"SELECT * FROM vlkb_compactsources.{b} WHERE (glon>=10.0 AND glon<=11.0) AND (glat>=-0.5 AND glat<=0.5)",
         f"compactsources.{b}")
        for b in BANDS
    ),
    ("SELECT * FROM compactsources.band70um WHERE (glon>=10.0 AND glon<=11.0) AND (glat>=-0.5 AND glat<=0.5)",
     "compactsources.band70um"),
    ("SELECT DISTINCT * FROM vlkb_compactsources.sed_view_final WHERE (glonft>=10.0 AND glonft<=11.0) AND"
     " (glatft>=-0.5 AND glatft<=0.5)", "compactsources.sed_view_final"),
    ("SELECT * FROM vlkb_compactsources.sed_view_final where designationft='TEST_SED_IN'",
     "compactsources.sed_view_final"),
    ("SELECT * FROM vlkb_compactsources.sed_models where id=987654", "compactsources.sed_models"),
    ("SELECT dist*cos(radians(glon)+3.14159265359/2) AS x, dist*sin(radians(glon)+3.14159265359/2) AS y,"
     " dist*tan(radians(glat)) AS z, * FROM vlkb_compactsources.props_dist WHERE (glon>=10.0 AND glon<=11.0)"
     " AND (glat>=-0.5 AND glat<=0.5)", "compactsources.props_dist"),
    ("SELECT f.idfil_mos, f.contour, f.glon, f.glat, b.contour AS branches_contour, b.contour1d AS branches_contour1d,"
     " b.contour_new AS branches_contour_new, b.flagspine AS flagspine_branches FROM vlkb_filaments.filaments AS f"
     " JOIN vlkb_filaments.branches AS b ON f.idfil_mos=b.idfil_mos WHERE (glon>=10.0 AND glon<=11.0) AND"
     " (glat>=-0.5 AND glat<=0.5)", "filaments.filaments"),
    ("SELECT * FROM vlkb_filaments.bubbles WHERE (glon_cen>=10.0 AND glon_cen<=11.0) AND"
     " (glat_cen>=-0.5 AND glat_cen<=0.5)", "filaments.bubbles"),
]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.published()


@pytest.fixture()
def db(adql_db: AdqlDb) -> Iterator[psycopg.Connection]:
    """The test database, with the published tables, rolled back after the test."""
    yield adql_db.conn
    adql_db.conn.rollback()


_FILL = {
    "short": 1, "int": 1, "long": 1, "float": 1.0, "double": 1.0, "boolean": True, "text": "x",
    "timestamp": "2020-01-01 00:00:00",
}


def insert(conn: psycopg.Connection, table: Table, **values: object) -> None:
    """Insert one row: the given values, and a filler for every other NOT NULL column."""
    row = dict(values)
    for col in table.columns:
        if col.name not in row and not col.nullable and not col.generated:
            row[col.name] = _FILL[col.type]
    names = list(row)
    conn.execute(
        sql.SQL("INSERT INTO {}.{} ({}) VALUES ({})").format(
            sql.Identifier(table.schema_name.lower()), sql.Identifier(table.name),
            sql.SQL(", ").join(map(sql.Identifier, names)), sql.SQL(", ").join(sql.Placeholder() * len(names)),
        ),
        [row[n] for n in names],
    )


def seed(conn: psycopg.Connection) -> None:
    """Rows inside and outside the client's box (10..11, -0.5..0.5) in every table it reads."""
    for b in BANDS:
        t = find_table(f"compactsources.{b}")
        insert(conn, t, designation=f"T{b}_in", glon=10.5, glat=0.1, ra=272.0, dec=-19.8, flux=2.5)
        insert(conn, t, designation=f"T{b}_out", glon=12.5, glat=0.1, ra=273.0, dec=-18.0)
    sed = find_table("compactsources.sed_view_final")
    insert(conn, sed, designationft="TEST_SED_IN", glonft=10.5, glatft=-0.1, distance=-9999.0)
    insert(conn, sed, designationft="TEST_SED_OUT", glonft=20.5, glatft=-0.1, distance=3.1)
    insert(conn, find_table("compactsources.sed_models"), id=987654, clump_mass=12.0)
    props = find_table("compactsources.props_dist")
    insert(conn, props, designation="Tprops_in", glon=10.2, glat=0.3, dist=4.5, mass=100.0)
    insert(conn, props, designation="Tprops_out", glon=30.2, glat=0.3, dist=4.5)
    fil = find_table("filaments.filaments")
    insert(conn, fil, idfil_mos=987654, glon=10.4, glat=0.0, contour="10.3_10.5_,0.0_0.1_",
           contour_poly="{(0.18,0),(0.1833,0),(0.1833,0.0017)}")
    br = find_table("filaments.branches")
    insert(conn, br, idbranch=987654, idfil_mos=987654, contour="a", contour1d="b", contour_new="c", flagspine="S",
           spine="{(0.18,0),(0.1833,0.0001)}")
    insert(conn, find_table("filaments.bubbles"), idbubble=987654, glon_cen=10.9, glat_cen=-0.4, radius=0.1)


@pytest.mark.parametrize("adql, table", CLIENT_QUERIES, ids=[q[1] + ":" + q[0][:40] for q in CLIENT_QUERIES])
def test_client_query_translates(adql: str, table: str, catalog: Catalog) -> None:
    tr = translate(adql, catalog)
    assert tr.tables[0] == table
    if "*" in adql and "JOIN" not in adql:
        declared = [c.name for c in find_table(table).published_columns]
        names = [c.name for c in tr.columns]
        assert names[-len(declared):] == declared


@pytest.mark.parametrize("adql, table", CLIENT_QUERIES, ids=[q[1] + ":" + q[0][:40] for q in CLIENT_QUERIES])
def test_client_query_runs(adql: str, table: str, catalog: Catalog, db: psycopg.Connection) -> None:
    seed(db)
    tr = translate(adql, catalog)
    rows = db.execute(tr.sql).fetchall()
    assert len(rows) == _expected_count(db, adql, table)


def _expected_count(conn: psycopg.Connection, adql: str, table: str) -> int:
    """The number of rows plain SQL finds for the client's query."""
    schema, name = table.split(".")
    qname = f'"{schema.lower()}"."{name}"'
    if "WHERE (glon>=" in adql and "JOIN" not in adql:
        where = "glon BETWEEN 10 AND 11 AND glat BETWEEN -0.5 AND 0.5"
    elif "glonft>=" in adql:
        where = "glonft BETWEEN 10 AND 11 AND glatft BETWEEN -0.5 AND 0.5"
    elif "glon_cen>=" in adql:
        where = "glon_cen BETWEEN 10 AND 11 AND glat_cen BETWEEN -0.5 AND 0.5"
    elif "designationft=" in adql:
        where = "designationft = 'TEST_SED_IN'"
    elif "id=987654" in adql:
        where = "id = 987654"
    elif "JOIN" in adql:
        return conn.execute(
            "SELECT count(*) FROM filaments.filaments f JOIN filaments.branches b USING (idfil_mos)"
            " WHERE f.glon BETWEEN 10 AND 11 AND f.glat BETWEEN -0.5 AND 0.5"
        ).fetchone()[0]
    else:
        where = "true"
    # whole rows as text: spoint has no equality operator DISTINCT could use
    counted = "DISTINCT t::text" if "DISTINCT" in adql else "*"
    return conn.execute(f"SELECT count({counted}) FROM {qname} AS t WHERE {where}").fetchone()[0]


def test_box_query_returns_the_source_inside(catalog: Catalog, db: psycopg.Connection) -> None:
    seed(db)
    tr = translate(CLIENT_QUERIES[5][0], catalog)
    rows = db.execute(tr.sql).fetchall()
    names = [c.name for c in tr.columns]
    mine = [r for r in rows if r[names.index("designation")].startswith("T")]
    assert [r[names.index("designation")] for r in mine] == ["Tband70um_in"]
    row = mine[0]
    # the internal point columns are not part of SELECT *: positions come as plain numbers
    assert "pos" not in names and "pos_gal" not in names
    assert (row[names.index("glon")], row[names.index("glat")]) == (10.5, 0.1)
    assert (row[names.index("ra")], row[names.index("dec")]) == (272.0, -19.8)


def test_props_dist_xyz_come_first(catalog: Catalog, db: psycopg.Connection) -> None:
    seed(db)
    adql = next(q for q, t in CLIENT_QUERIES if t == "compactsources.props_dist")
    tr = translate(adql, catalog)
    names = [c.name for c in tr.columns]
    assert names[:4] == ["x", "y", "z", "designation"]
    rows = {r[3]: r for r in db.execute(tr.sql).fetchall()}
    x, y, z = rows["Tprops_in"][:3]
    import math

    assert x == pytest.approx(4.5 * math.cos(math.radians(10.2) + 3.14159265359 / 2))
    assert y == pytest.approx(4.5 * math.sin(math.radians(10.2) + 3.14159265359 / 2))
    assert z == pytest.approx(4.5 * math.tan(math.radians(0.3)))


@pytest.mark.parametrize("point, circle, column", [
    ("POINT('GALACTIC', glon, glat)", "CIRCLE('GALACTIC', 10.5, 0.1, 0.05)", "pos_gal"),
    ("POINT('ICRS', ra, dec)", "CIRCLE('ICRS', 272.0, -19.8, 0.05)", "pos"),
])
def test_cone_on_published_table_uses_the_gist_index(point: str, circle: str, column: str, catalog: Catalog,
                                                      db: psycopg.Connection) -> None:
    # the point columns are internal (not published), and POINT(lon, lat) still reaches their index
    tr = translate(f"SELECT designation FROM compactsources.band70um WHERE CONTAINS({point}, {circle}) = 1", catalog)
    assert f'"{column}" <@' in tr.sql
    db.execute("SET LOCAL enable_seqscan = off")
    plan = "\n".join(r[0] for r in db.execute("EXPLAIN " + tr.sql).fetchall())
    assert "Index" in plan and column in plan, plan


def test_every_published_column_can_be_named(catalog: Catalog) -> None:
    # unquoted (ADQL reserved words such as size and distance included) and delimited
    geometry = {"point", "circle", "polygon", "path"}
    for table in catalog.tables:
        for col in table.columns:
            order = "" if col.decl.type in geometry else f" ORDER BY {col.name}"
            for name in (col.name, f'"{col.name}"'):
                tr = translate(f"SELECT {name} FROM {table.qualified_name} WHERE {name} IS NOT NULL{order}", catalog)
                assert [c.name for c in tr.columns] == [col.name]


def test_reserved_word_columns_of_published_tables(catalog: Catalog, db: psycopg.Connection) -> None:
    for adql in ("SELECT distance FROM compactsources.sed_view_final WHERE distance > -9999",
                 "SELECT column_name, size FROM TAP_SCHEMA.columns WHERE size IS NULL OR size > 0"):
        tr = translate(adql, catalog)
        db.execute(tr.sql).fetchall()
