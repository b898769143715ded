"""Geometry: the ICRS->Galactic Euler angles, pgSphere's rotation, and the SQL functions of functions.sql."""

from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

from tests.adql.conftest import AdqlDb
from tests.adql.expect import sep
from vo.adql.geometry import EULER_ICRS_TO_GALACTIC


def test_euler_angles_are_astropys_rotation() -> None:
    # R = Rz(psi) Rx(theta) Rz(phi), with R taking ICRS unit vectors to Galactic ones
    axes = np.eye(3)
    r = SkyCoord(x=axes[0], y=axes[1], z=axes[2], representation_type="cartesian", frame="icrs").galactic
    matrix = r.cartesian.xyz.value
    phi, theta, psi = EULER_ICRS_TO_GALACTIC

    def rz(a: float) -> np.ndarray:
        return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])

    def rx(a: float) -> np.ndarray:
        return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])

    assert np.allclose(rz(psi) @ rx(theta) @ rz(phi), matrix, atol=1e-14)


def test_pgsphere_rotation_matches_astropy(adql_db: AdqlDb) -> None:
    rng = np.random.default_rng(7)
    ra = rng.uniform(0, 360, 50)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, 50)))
    gal = SkyCoord(ra=ra * u.deg, dec=dec * u.deg).galactic
    strans = "strans({}, {}, {})".format(*EULER_ICRS_TO_GALACTIC)
    try:
        for a, d, l_, b in zip(ra, dec, gal.l.deg, gal.b.deg, strict=True):
            to_gal = adql_db.conn.execute(
                f"SELECT degrees(long(p)), degrees(lat(p)) FROM (SELECT spoint(radians(%s), radians(%s)) + {strans}"
                " AS p) AS t", (float(a), float(d))).fetchone()
            back = adql_db.conn.execute(
                f"SELECT degrees(long(p)), degrees(lat(p)) FROM (SELECT spoint(radians(%s), radians(%s)) - {strans}"
                " AS p) AS t", (float(l_), float(b))).fetchone()
            assert sep(*to_gal, l_, b) * 3600 < 1e-6
            assert sep(*back, a, d) * 3600 < 1e-6
    finally:
        adql_db.conn.rollback()


@pytest.mark.parametrize(
    "expr, expected",
    [
        ("vlkb_dali_point(spoint(radians(10), radians(-20)))", [10, -20]),
        ("vlkb_dali_point(spoint(radians(-10), radians(20)))", [350, 20]),
        ("vlkb_dali_circle(scircle(spoint(radians(1), radians(2)), radians(3)))", [1, 2, 3]),
        ("vlkb_dali_polygon(spoly '{(10d,0d),(12d,0d),(12d,3d)}')", [10, 0, 12, 0, 12, 3]),
        ("vlkb_dali_path(spath '{(10d,0d),(12d,1d)}')", [10, 0, 12, 1]),
        ("vlkb_dali_polygon(vlkb_spoly(ARRAY[359.5, -1, 0.5, -1, 0.5, 1, 359.5, 1]::float8[]))",
         [359.5, -1, 0.5, -1, 0.5, 1, 359.5, 1]),
        ("vlkb_spoly(ARRAY[1, 2, NULL, 4, 5, 6]::float8[])", None),
        ("vlkb_dali_point(NULL)", None),
    ],
)
def test_sql_functions(expr: str, expected: list[float] | None, adql_db: AdqlDb) -> None:
    try:
        (value,) = adql_db.conn.execute(f"SELECT {expr}").fetchone()
    finally:
        adql_db.conn.rollback()
    if expected is None:
        assert value is None
    else:
        assert value == pytest.approx(expected, abs=1e-12)


def test_polygon_vertices_in_degree_output_mode(adql_db: AdqlDb) -> None:
    conn = adql_db.conn
    try:
        conn.execute("SELECT set_sphere_output('DEG')")
        (value,) = conn.execute("SELECT vlkb_dali_polygon(spoly '{(10d,0d),(12d,0d),(12d,3d)}')").fetchone()
    finally:
        conn.execute("SELECT set_sphere_output('RAD')")
        conn.rollback()
    assert value == pytest.approx([10, 0, 12, 0, 12, 3], abs=1e-9)
