"""Overlap codes (Starlink AST astOverlap) of a footprint and a region, computed by pgSphere."""

from __future__ import annotations

import psycopg
import pytest

from vo.shapes import Circle, Polygon, Range
from vo.sia import overlap_code_sql

FOOTPRINT = "spoly '{(10d,-1d),(12d,-1d),(12d,1d),(10d,1d)}'"


@pytest.mark.parametrize(("shape", "code"), [
    (Circle(lon=11, lat=0, radius=0.2), 3),            # the footprint covers the request
    (Range(lon1=10.5, lon2=11.5, lat1=-0.5, lat2=0.5), 3),
    (Circle(lon=11, lat=0, radius=5), 2),              # the request covers the footprint
    (Range(lon1=9, lon2=13, lat1=-2, lat2=2), 2),
    (Circle(lon=12, lat=0, radius=0.5), 4),            # partial
    (Range(lon1=11.5, lon2=13, lat1=-0.5, lat2=0.5), 4),
    (Circle(lon=30, lat=0, radius=0.5), 1),            # none
    (Polygon(vertices=((10, -1), (12, -1), (12, 1), (10, 1))), 5),  # identical
    (Circle(lon=100, lat=0, radius=120), 2),           # bigger than pgSphere's circles
    (Circle(lon=191, lat=0, radius=10), 1),
])
def test_overlap_codes(conn: psycopg.Connection, shape, code) -> None:
    assert conn.execute(f"SELECT {overlap_code_sql(FOOTPRINT, shape)}").fetchone()[0] == code
