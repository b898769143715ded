"""Datasets of the demo to cut, read from the database as its owner (no row-level security)."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
import pytest
from astropy.coordinates import SkyCoord


@dataclass(frozen=True)
class Tile:
    """One dataset and the Galactic position of its centre."""

    did: str
    collection: str
    title: str
    glon: float
    glat: float
    vel_min: float | None
    vel_max: float | None


def tile(database, collection: str, title_like: str = "%", offset: int = 0) -> Tile:
    with psycopg.connect(database.url) as c:
        row = c.execute(
            "SELECT obs_publisher_did, obs_collection, obs_title, s_ra, s_dec, vel_min, vel_max FROM ivoa.obscore "
            "WHERE obs_collection = %s AND obs_title LIKE %s ORDER BY obs_publisher_did OFFSET %s LIMIT 1",
            (collection, title_like, offset)).fetchone()
    assert row is not None, f"no {collection} {title_like} dataset in the demo"
    g = SkyCoord(row[3], row[4], unit="deg").galactic
    return Tile(row[0], row[1], row[2], float(g.l.wrap_at("360d").deg), float(g.b.deg), row[5], row[6])


@pytest.fixture(scope="session")
def image(database) -> Tile:
    return tile(database, "Hi-GAL", "%70 um")


@pytest.fixture(scope="session")
def cube(database) -> Tile:
    return tile(database, "CHaMP", "13CO%")


@pytest.fixture(scope="session")
def private(database) -> Tile:
    return tile(database, "MeerKAT-private")
