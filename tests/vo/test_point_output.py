"""POINT outputs are their two numbers, in every format (issue 16).

``POINT('ICRS', ra, dec)`` in a select list is written from the row's own doubles (its DALI forms,
``vo.adql.geometry.twin``), not through a pgSphere point. Each format's document is decoded here
(astropy, the csv and json modules, pyarrow) and every point compared with the coordinates read
straight from the table with psycopg: equal to the last bit, NULL where a coordinate is NULL.
"""

from __future__ import annotations

import csv
import io
import json
import math
from functools import partial

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io.votable import parse_single_table

from vo.adql import Catalog, translate
from vo.caller import Caller
from vo.results import QueryPlan, stream_select_blocking
from vo.votable.writers import FORMATS

TABLE = "compactsources.band70um"
# the Galactic point is NULL in the rows south of the plane (a NULL longitude)
ADQL = (f"SELECT designation, POINT('ICRS', ra, dec) AS pos, "
        f"POINT('GALACTIC', CASE WHEN glat >= 0 THEN glon END, glat) AS pos_gal FROM {TABLE} ORDER BY designation")


def _run(url: str, adql: str, fmt: str) -> bytes:
    tr = translate(adql, Catalog.published())
    plan = QueryPlan.of(tr.sql, tr.columns, fmt, infos={"QUERY_STATUS": "OK"})
    return b"".join(stream_select_blocking(partial(psycopg.AsyncConnection.connect, url), plan, Caller(), timeout=60))


def _points(doc: bytes, fmt: str) -> list[tuple[str, tuple | None, tuple | None]]:
    """(designation, pos, pos_gal) per row, points as float tuples or None, from one document."""
    def pair(v: object) -> tuple | None:
        if v is None or v is np.ma.masked or (hasattr(v, "mask") and np.all(v.mask)):
            return None
        values = tuple(float(x) for x in np.asarray(v, dtype=float))
        return None if all(math.isnan(x) for x in values) else values

    if fmt.startswith("votable"):
        table = parse_single_table(io.BytesIO(doc)).to_table()
        return [(str(r["designation"]), pair(r["pos"]), pair(r["pos_gal"])) for r in table]
    def text(v: str | None) -> tuple | None:
        return tuple(float(x) for x in v.split()) if v else None

    if fmt == "parquet":  # arrays are kept as their DALI text lists (vo/votable/parquet.py)
        rows = pq.read_table(pa.BufferReader(doc)).to_pylist()
        return [(r["designation"], text(r["pos"]), text(r["pos_gal"])) for r in rows]
    if fmt == "json":
        data = json.loads(doc)["data"]
        return [(d, pair(p) if p is not None else None, pair(g) if g is not None else None) for d, p, g in data]

    rows = list(csv.reader(io.StringIO(doc.decode(), newline=""), delimiter="," if fmt == "csv" else "\t"))[1:]
    return [(d, text(p), text(g)) for d, p, g in rows]


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_points_are_the_coordinates_in_every_format(database, fmt: str) -> None:
    with psycopg.connect(database.url) as conn:
        truth = {d: ((ra, dec), (glon, glat) if glat >= 0 else None) for d, ra, dec, glon, glat in conn.execute(
            f"SELECT designation, ra, dec, glon, glat FROM {TABLE}")}
    got = _points(_run(database.url, ADQL, fmt), fmt)
    assert len(got) == len(truth) > 100
    assert {g is None for _, _, g in got} == {True, False}  # both kinds of row are there
    for designation, pos, pos_gal in got:
        assert (pos, pos_gal) == truth[designation], (fmt, designation)


def test_points_in_distinct_union_and_group_by(database) -> None:
    """The forms compare as values do: DISTINCT and UNION keep one row per point; grouped queries
    (whose outputs are not grouping columns) write the array made from the two numbers."""
    with psycopg.connect(database.url) as conn:
        (n,) = conn.execute(f"SELECT count(DISTINCT (ra, dec)) FROM {TABLE}").fetchone()
    for adql in (f"SELECT DISTINCT POINT('ICRS', ra, dec) AS p FROM {TABLE}",
                 f"SELECT POINT('ICRS', ra, dec) AS p FROM {TABLE} UNION SELECT POINT('ICRS', ra, dec) FROM {TABLE}",
                 f"SELECT POINT('ICRS', ra, dec) AS p, COUNT(*) AS k FROM {TABLE} GROUP BY ra, dec"):
        table = parse_single_table(io.BytesIO(_run(database.url, adql, "votable"))).to_table()
        assert len(table) == n, adql
        assert table["p"].shape[1:] == (2,)
