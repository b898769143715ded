"""SIA parameters, DALI shapes and the SQL they become, without a database."""

from __future__ import annotations

import math

import pytest

from vo.errors import UsageError
from vo.shapes import Circle, Interval, Polygon, Range, parse_shape
from vo.sia import SiaQuery, build_sql


def query(**raw: list[str]) -> SiaQuery:
    return SiaQuery.from_params({k.upper(): v for k, v in raw.items()}, maxrec_default=100, maxrec_limit=1000)


@pytest.mark.parametrize("text", [
    "CIRCLE 10.5 -0.2 0.1", "RANGE -0.5 0.5 -1.0 1.0", "RANGE 0.0 360.0 -Inf +Inf",
    "POLYGON 359.9 0.0 0.1 0.0 0.0 0.1", "circle 1 2 3", "POLYGON 1e-3 0 1 0 0 1",
])
def test_shapes_round_trip(text: str) -> None:
    shape = parse_shape(text, "POS")
    assert parse_shape(shape.to_text(), "POS") == shape


def test_range_across_l0_unwraps() -> None:
    """DALI 1.2 section 3.9: lon1 > lon2 runs east from lon1 through 0 to lon2."""
    wrapped = parse_shape("RANGE 359.85 0.25 -0.2 0.2", "POS")
    assert isinstance(wrapped, Range)
    assert (wrapped.lon1, wrapped.lon2) == pytest.approx((359.85, 360.25))
    assert parse_shape(wrapped.to_text(), "POS") == wrapped
    assert not wrapped.full_longitude
    for bad in ("RANGE 360 0 0 1", "RANGE 10 -350 0 1", "RANGE +Inf -Inf 0 1"):
        with pytest.raises(UsageError, match="^POS: "):
            parse_shape(bad, "POS")


def test_interval_forms() -> None:
    assert Interval.parse("1 2", "BAND") == Interval(lo=1, hi=2)
    assert Interval.parse("3e-6", "BAND") == Interval(lo=3e-6, hi=3e-6)
    iv = Interval.parse("-Inf +inf", "BAND")
    assert math.isinf(iv.lo) and iv.lo < 0 < iv.hi
    assert Interval.parse(iv.to_text(), "BAND") == iv
    for bad in ("", "nan 1", "1 2 3", "2 1", "1_0 2", "+Inf"):
        with pytest.raises(UsageError, match="^BAND: "):
            Interval.parse(bad, "BAND")


def test_model_and_or_rules() -> None:
    q = query(pos=["CIRCLE 1 2 0.5", "RANGE 0 1 0 1"], possys=["galactic"], band=["1e-6 2e-6"],
              collection=["A", "B"], pol=["i"], calib=["2"], maxrec=["5000"], responseformat=["csv"])
    assert isinstance(q.pos[0], Circle) and isinstance(q.pos[1], Range)
    assert q.possys == "GALACTIC" and q.pol == ("I",) and q.calib == (2,)
    assert q.maxrec == 1000 and q.format.name == "csv"
    sql = build_sql(q)
    assert "o.s_region_galactic && scircle(" in sql and " OR " in sql
    assert "o.obs_collection IN ('A', 'B')" in sql
    assert "o.em_min <= (2e-06) AND o.em_max >= (1e-06)" in sql


def test_defaults_and_quoting() -> None:
    q = query(pos=[" "], collection=["x' OR '1'='1"])
    assert q.pos == () and q.format.name == "votable/td" and q.maxrec == 100
    assert "'x'' OR ''1''=''1'" in build_sql(q)
    assert build_sql(query()).split("WHERE ", 1)[1].startswith("TRUE")


def test_wide_shapes_sql() -> None:
    assert "TRUE" in build_sql(query(pos=["CIRCLE 0 0 180"]))
    assert "NOT (o.s_region <@ scircle(" in build_sql(query(pos=["CIRCLE 0 0 100"]))
    band = build_sql(query(pos=["RANGE 0 360 -2 2"]))
    assert f"spoint({2 * math.pi!r}" in band
    across = build_sql(query(pos=["RANGE -1 1 0 1"]))
    assert f"sbox(spoint({math.radians(359.0)!r}" in across
    poly = Polygon.parse("-1 0 1 0 0 1", "POS")
    assert "(359.000000000000d,0.000000000000d)" in build_sql(query(pos=[poly.to_text()]))


@pytest.mark.parametrize("raw, name", [
    ({"POSSYS": ["ICRS", "GALACTIC"]}, "POSSYS"), ({"MAXREC": ["1.5"]}, "MAXREC"),
    ({"POS": ["CIRCLE 0 0 181"]}, "POS"), ({"POS": ["RANGE 0 800 0 1"]}, "POS"),
    ({"TARGET": ["a\x00b"]}, "TARGET"), ({"CALIB": ["-1"]}, "CALIB"),
])
def test_model_errors_name_the_parameter(raw, name) -> None:
    with pytest.raises(UsageError, match=f"^{name}: "):
        SiaQuery.from_params(raw, maxrec_default=1, maxrec_limit=1)
