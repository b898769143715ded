"""Unit tests of the translation: the SQL it writes, the columns it announces, the tables it reads."""

from __future__ import annotations

import pytest

from schemas import Column, Table
from tests.adql.conftest import AdqlDb
from tests.adql.tables import corpus_catalog
from vo.adql import Catalog, OutputColumn, Translation, translate
from vo.adql.catalog import GALACTIC, ICRS, column_frame
from vo.errors import UsageError


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return corpus_catalog()


def sql(query: str, cat: Catalog, **kw: object) -> str:
    return translate(query, cat, **kw).sql  # type: ignore[arg-type]


# ---------------------------------------------------------------- the point-column rewrite


def test_galactic_point_over_glon_glat_becomes_pos_gal(cat: Catalog) -> None:
    s = sql("SELECT designation FROM compactsources.band70um"
            " WHERE CONTAINS(POINT('GALACTIC', glon, glat), CIRCLE('GALACTIC', 10, 0, 0.5)) = 1", cat)
    assert '("band70um"."pos_gal" <@ SCIRCLE(' in s
    assert "SPOINT(RADIANS(\"band70um\".\"glon\")" not in s


def test_icrs_point_over_ra_dec_becomes_pos(cat: Catalog) -> None:
    s = sql("SELECT designation FROM compactsources.band70um AS t"
            " WHERE 1 = CONTAINS(POINT('ICRS', t.ra, t.dec), CIRCLE('ICRS', 10, 0, 0.5))", cat)
    assert '("t"."pos" <@ SCIRCLE(' in s


def test_point_without_frame_is_rewritten_too(cat: Catalog) -> None:
    s = sql("SELECT designation FROM compactsources.band70um"
            " WHERE CONTAINS(POINT(glon, glat), CIRCLE(1, 2, 3)) = 1",
            cat)
    assert '"pos_gal" <@' in s


def test_point_in_another_frame_is_not_rewritten(cat: Catalog) -> None:
    # The user says glon/glat are ICRS here: pos_gal (GALACTIC) is not the same point.
    s = sql("SELECT designation FROM compactsources.band70um"
            " WHERE CONTAINS(POINT('ICRS', glon, glat), CIRCLE('ICRS', 10, 0, 0.5)) = 1", cat)
    assert '"pos_gal"' not in s
    assert 'SPOINT(RADIANS("band70um"."glon"), RADIANS("band70um"."glat"))' in s


def test_point_over_swapped_or_mixed_columns_is_not_rewritten(cat: Catalog) -> None:
    s = sql("SELECT a.designation FROM compactsources.band70um AS a, compactsources.band160um AS b"
            " WHERE CONTAINS(POINT('GALACTIC', a.glon, b.glat), CIRCLE('GALACTIC', 1, 2, 3)) = 1"
            " AND CONTAINS(POINT('GALACTIC', a.glat, a.glon), CIRCLE('GALACTIC', 1, 2, 3)) = 1", cat)
    assert '"pos_gal"' not in s


def test_constant_side_is_rotated_not_the_column(cat: Catalog) -> None:
    s = sql("SELECT designation FROM compactsources.band70um"
            " WHERE CONTAINS(POINT('GALACTIC', glon, glat), CIRCLE('ICRS', 1, 2, 3)) = 1",
            cat)
    assert '("band70um"."pos_gal" <@ (SCIRCLE(SPOINT(RADIANS(1), RADIANS(2)), RADIANS(3)) + STRANS(' in s
    s = sql("SELECT designation FROM compactsources.band70um"
            " WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('GALACTIC', 1, 2, 3)) = 1",
            cat)
    assert '("band70um"."pos" <@ (SCIRCLE(SPOINT(RADIANS(1), RADIANS(2)), RADIANS(3)) - STRANS(' in s


def test_distance_below_a_constant_becomes_containment(cat: Catalog) -> None:
    s = sql("SELECT designation FROM compactsources.band70um"
            " WHERE DISTANCE(POINT('GALACTIC', glon, glat), POINT('GALACTIC', 1, 2)) < 0.1", cat)
    assert '("band70um"."pos_gal" <@ SCIRCLE(SPOINT(RADIANS(1), RADIANS(2)), RADIANS(0.1)))' in s


def test_distance_join_keeps_the_indexed_point_on_the_left(cat: Catalog) -> None:
    # a cross-match: the computed point of one side is the centre, so the GiST index of the other serves each row
    mine = Table(name="mine", description="d", schema_name="TAP_UPLOAD", columns=[
        Column(name="ra", type="double", description="d"), Column(name="dec", type="double", description="d")])
    cat = cat.with_table(mine, sql_schema="pg_temp", sql_name="tap_upload_0")
    for cond in ("DISTANCE(POINT(u.ra, u.dec), POINT(s.ra, s.dec)) < 5.0/3600",
                 "5.0/3600 > DISTANCE(POINT(s.ra, s.dec), POINT(u.ra, u.dec))"):
        s = sql(f"SELECT s.designation FROM TAP_UPLOAD.mine AS u JOIN compactsources.band70um AS s ON {cond}", cat)
        # the leakproof circle (db/sql/adql_functions.sql): the index serves under row-level security too
        assert '("s"."pos" <@ VLKB_JOIN_CIRCLE(SPOINT(RADIANS("u"."ra"), RADIANS("u"."dec")), RADIANS(' in s, s
    # a radius that is not a constant number keeps the comparison as written
    s = sql("SELECT s.designation FROM TAP_UPLOAD.mine AS u JOIN compactsources.band70um AS s"
            " ON DISTANCE(POINT(u.ra, u.dec), POINT(s.ra, s.dec)) < u.ra", cat)
    assert "<->" in s and "<@" not in s


def test_contains_equals_zero_is_negated(cat: Catalog) -> None:
    s = sql("SELECT designation FROM compactsources.band70um"
            " WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 1, 2, 3)) = 0",
            cat)
    assert 'WHERE NOT (("band70um"."pos" <@' in s


# ---------------------------------------------------------------- limits


@pytest.mark.parametrize(
    "query, maxrec, limit",
    [
        ("SELECT glon FROM compactsources.band70um", None, None),
        ("SELECT glon FROM compactsources.band70um", 100, 101),
        ("SELECT glon FROM compactsources.band70um", 0, 1),
        ("SELECT TOP 10 glon FROM compactsources.band70um", None, 10),
        ("SELECT TOP 10 glon FROM compactsources.band70um", 100, 10),
        ("SELECT TOP 100 glon FROM compactsources.band70um", 100, 100),
        ("SELECT TOP 1000 glon FROM compactsources.band70um", 100, 101),
        ("SELECT glon FROM compactsources.band70um UNION SELECT glat FROM compactsources.band70um", 5, 6),
    ],
)
def test_top_and_maxrec(query: str, maxrec: int | None, limit: int | None, cat: Catalog) -> None:
    s = sql(query, cat, maxrec=maxrec)
    if limit is None:
        assert "LIMIT" not in s
    else:
        assert s.endswith(f"LIMIT {limit}")


def test_top_in_a_subquery_stays_there(cat: Catalog) -> None:
    s = sql("SELECT s.glon FROM (SELECT TOP 3 glon FROM compactsources.band70um ORDER BY glon) AS s", cat, maxrec=10)
    assert "LIMIT 3) AS" in s and s.endswith("LIMIT 11")


def test_offset_is_kept(cat: Catalog) -> None:
    s = sql("SELECT TOP 5 glon FROM compactsources.band70um ORDER BY glon OFFSET 20", cat, maxrec=3)
    assert s.endswith("LIMIT 4 OFFSET 20")


def test_negative_maxrec_is_refused(cat: Catalog) -> None:
    with pytest.raises(UsageError, match="MAXREC"):
        translate("SELECT glon FROM compactsources.band70um", cat, maxrec=-1)


# ---------------------------------------------------------------- output columns


def test_output_columns_carry_the_declarations() -> None:
    table = Table(name="t", description="d", columns=[
        Column(name="glon", type="double", unit="deg", ucd="pos.galactic.lon", utype="x:glon", description="lon"),
        Column(name="pos_gal", type="point", ucd="pos.galactic", description="p"),
        Column(name="code", type="text", arraysize="4", description="c"),
        Column(name="n", type="short", description="n"),
    ]).model_copy(update={"schema_name": "s"})
    tr = translate("SELECT glon, pos_gal, code, n, n + 1 AS m, COUNT(*) FROM s.t GROUP BY glon, pos_gal, code, n",
                   Catalog([table]))
    assert tr.columns[0] == OutputColumn("glon", "double", None, None, "deg", "pos.galactic.lon", "x:glon", "lon",
                                         "double precision")
    assert tr.columns[1] == OutputColumn("pos_gal", "double", "2", "point", None, "pos.galactic", None, "p",
                                         "float8[]")
    assert (tr.columns[2].datatype, tr.columns[2].arraysize, tr.columns[2].pgtype) == ("char", "4", "text")
    assert (tr.columns[3].datatype, tr.columns[3].pgtype) == ("short", "smallint")
    assert (tr.columns[4].name, tr.columns[4].datatype, tr.columns[4].pgtype) == ("m", "int", "integer")
    assert (tr.columns[5].name, tr.columns[5].datatype, tr.columns[5].pgtype) == ("count", "long", "bigint")


def test_geometry_constructors_are_dali_arrays(cat: Catalog) -> None:
    tr = translate("SELECT TOP 1 POINT('ICRS', 1, 2), CIRCLE('ICRS', 1, 2, 3), POLYGON('ICRS', 1, 2, 3, 4, 5, 6),"
                   " BOX('ICRS', 1, 2, 3, 4), DISTANCE(POINT(1, 2), POINT(3, 4)), AREA(CIRCLE(1, 2, 3))"
                   " FROM ivoa.obscore", cat)
    got = [(c.name, c.datatype, c.arraysize, c.xtype, c.unit, c.pgtype) for c in tr.columns]
    assert got == [
        ("point", "double", "2", "point", None, "vlkb_dali_twin"),  # its forms made from the two numbers
        ("circle", "double", "3", "circle", None, "float8[]"),
        ("polygon", "double", "*", "polygon", None, "float8[]"),
        ("box", "double", "*", "polygon", None, "float8[]"),
        ("distance", "double", None, None, "deg", "double precision"),
        ("area", "double", None, None, "deg**2", "double precision"),
    ]


def test_repeated_names_get_a_suffix(cat: Catalog) -> None:
    tr = translate("SELECT a.glon, b.glon, a.glon AS glon_2, glat AS GLON FROM compactsources.band70um AS a"
                   " JOIN compactsources.band160um AS b USING (designation, glat)", cat)
    assert [c.name for c in tr.columns] == ["glon", "glon_2", "glon_2_2", "GLON_3"]
    assert 'AS "glon_2_2"' in tr.sql


def test_in_unit_sets_the_unit_and_scales(cat: Catalog) -> None:
    tr = translate("SELECT IN_UNIT(fwhma, 'deg') AS f, IN_UNIT(dist, 'pc') FROM compactsources.band70um,"
                   " compactsources.props_dist", cat)
    assert [c.unit for c in tr.columns] == ["deg", "pc"]
    assert "* 0.0002777777777777778" in tr.sql and "* 1000.0" in tr.sql


def test_tables_read_are_listed_once_in_order(cat: Catalog) -> None:
    tr = translate("SELECT designation FROM vlkb_compactsources.band160um WHERE designation IN"
                   " (SELECT designation70 FROM compactsources.sed_view_final) UNION"
                   " SELECT designation FROM compactsources.band160um", cat)
    assert tr.tables == ["compactsources.band160um", "compactsources.sed_view_final"]
    assert isinstance(tr, Translation)


# ---------------------------------------------------------------- names and quoting


def test_reserved_words_are_quoted(cat: Catalog) -> None:
    s = sql("SELECT size, distance FROM TAP_SCHEMA.columns, compactsources.sed_view_final", cat)
    assert '"columns"."size"' in s and '"sed_view_final"."distance"' in s


def test_published_tap_schema_is_lower_case_in_postgres() -> None:
    s = sql("SELECT table_name FROM TAP_SCHEMA.tables", Catalog.published())
    assert 'FROM "tap_schema"."tables" AS "tables"' in s


def test_schema_aliases(cat: Catalog) -> None:
    a = translate("SELECT designation FROM vlkb_compactsources.band70um", cat)
    b = translate("SELECT designation FROM compactsources.band70um", cat)
    assert a.sql == b.sql and a.tables == b.tables == ["compactsources.band70um"]
    extra = cat.with_aliases({"higal": "compactsources"})
    assert translate("SELECT designation FROM HIGAL.band70um", extra).sql == b.sql


def test_unqualified_table_name_when_unique(cat: Catalog) -> None:
    assert translate("SELECT designation FROM band70um", cat).tables == ["compactsources.band70um"]


def test_upload_table_added_at_run_time(cat: Catalog) -> None:
    upload = Table(name="mine", description="upload", columns=[
        Column(name="ra", type="double", unit="deg", description="ra"),
        Column(name="dec", type="double", unit="deg", description="dec"),
    ]).model_copy(update={"schema_name": "TAP_UPLOAD"})
    with_upload = cat.with_table(upload, sql_schema="pg_temp", sql_name="upload_1")
    tr = translate("SELECT m.ra, b.designation FROM TAP_UPLOAD.mine AS m JOIN compactsources.band70um AS b"
                   " ON CONTAINS(POINT('ICRS', b.ra, b.dec), CIRCLE('ICRS', m.ra, m.dec, 0.01)) = 1", with_upload)
    assert '"pg_temp"."upload_1" AS "m"' in tr.sql
    assert tr.tables == ["TAP_UPLOAD.mine", "compactsources.band70um"]
    with pytest.raises(UsageError, match="does not exist"):
        translate("SELECT ra FROM TAP_UPLOAD.mine", cat)


def test_frames_come_from_ucds_then_names() -> None:
    assert column_frame(Column(name="x", type="point", ucd="pos;pos.galactic", description="")) == GALACTIC
    assert column_frame(Column(name="x", type="point", ucd="pos.eq", description="")) == ICRS
    assert column_frame(Column(name="s_region", type="polygon", ucd="pos.outline;obs.field", description="")) == ICRS
    assert column_frame(Column(name="spine", type="path", description="")) == GALACTIC
    assert column_frame(Column(name="other", type="polygon", description="")) is None
    assert column_frame(Column(name="pos", type="double", description="")) is None


# ---------------------------------------------------------------- safety of the generated text


def test_comments_never_reach_the_sql(cat: Catalog) -> None:
    s = sql("SELECT glon /* DROP TABLE x; */ FROM compactsources.band70um -- */ '; DROP TABLE y", cat)
    assert "DROP" not in s and "--" not in s and "/*" not in s


def test_quotes_in_aliases_and_strings_are_escaped(cat: Catalog) -> None:
    tr = translate("""SELECT glon AS "x"" FROM pg_user --", 'it''s' AS s FROM compactsources.band70um""", cat)
    assert tr.columns[0].name == 'x" FROM pg_user --'
    assert '"x"" FROM pg_user --"' in tr.sql
    assert "'it''s'" in tr.sql


def test_backslashes_are_literal(cat: Catalog, adql_db: AdqlDb) -> None:
    tr = translate(r"SELECT TOP 1 'a\', 'b\''c', 'x\n' FROM compactsources.band70um", adql_db.catalog)
    try:
        row = adql_db.conn.execute(tr.sql).fetchone()
    finally:
        adql_db.conn.rollback()
    assert row == ("a\\", "b\\'c", "x\\n")


def test_nul_character_is_refused(cat: Catalog) -> None:
    with pytest.raises(UsageError, match="NUL"):
        translate("SELECT 'a\x00' FROM compactsources.band70um", cat)


def test_generated_sql_uses_only_allowed_tables(cat: Catalog) -> None:
    tr = translate("SELECT * FROM compactsources.band70um AS a NATURAL JOIN compactsources.band160um AS b", cat)
    assert "USING (" in tr.sql and "NATURAL" not in tr.sql
