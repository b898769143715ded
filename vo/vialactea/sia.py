"""The SIA 2.0 answer as the ViaLactea client reads it (``{datasets}/siav2/query``).

The same query as ``/sia/query`` (:func:`vo.sia.where_clause`, the caller's row-level
security, TABLEDATA by default) with the client's additions (vialactea-client.md 1.A.1):

- ``overlapSky``: the Starlink AST overlap code of the dataset's Galactic footprint and the
  requested region (:func:`vo.sia.overlap_code_sql`: 1 none, 2 dataset inside the region,
  3 region inside the dataset, 4 partial, 5 identical);
- ``overlapSpec``: the same code for ``[em_min, em_max]`` against the first BAND interval,
  NULL when no BAND is given; ``overlap``: both combined (the spatial code when there is no
  BAND, 1 when either is 1, 4 when they disagree otherwise);
- ``s_region_galactic`` as the text ``POLYGON GALACTIC l1 b1 ... ln bn`` (the client reads
  tokens 2 to 9 as four corners), where ``ivoa.obscore`` publishes a DALI polygon;
- ``em_min``/``em_max`` in metres and never NULL: one unknown bound takes the other's value,
  and a dataset with no spectral coverage at all is left out of this answer (the client
  files rows by wavelength and crashes on a missing one; ``/sia/query`` still lists it);
- one virtual merge row (``overlapSky`` 0, skipped by the client) for each sub-survey
  (``obs_collection`` + ``obs_title``: survey, species and transition) with several datasets
  in the region: its ``obs_publisher_did`` is their DIDs joined by ``;`` (the legacy merge's
  ``pubdid=A;B;C``), its spectral and velocity ranges span theirs, its footprint is the
  region's bounding box. The client asks ``{datasets}/soda/sync`` with that ID and the region when
  the row is opened; :func:`merge_row_dids` reads it back and the answer is the merge of those
  datasets (``vo.soda.merge``, as ``/soda/merge``).

One region (POS) is required: the overlap codes and merge rows are relative to it.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import replace
from functools import cache

from psycopg_pool import AsyncConnectionPool

from vo.adql.output import OutputColumn
from vo.caller import Caller
from vo.errors import UsageError
from vo.shapes import Circle, Interval, Polygon, Range
from vo.sia import SiaQuery, obscore_columns, overlap_code_sql, run_query, where_clause

__all__ = ["EXTRA_COLUMNS", "MERGE_SEPARATOR", "build_sql", "client_columns", "merge_row_dids", "region_box", "search"]


def _code_column(name: str, description: str) -> OutputColumn:
    return OutputColumn.of(name, "int", "integer", ucd="meta.code", description=description)


#: the columns the client (and the related web client) read besides ObsCore's
EXTRA_COLUMNS: tuple[OutputColumn, ...] = (
    _code_column("overlapSky", "Starlink AST overlap code of the dataset's "
                 "footprint and the requested region: 0 virtual merge row, 1 none, 2 dataset inside the region, "
                 "3 region inside the dataset, 4 partial, 5 identical"),
    _code_column("overlapSpec", "The same code for the dataset's spectral "
                 "range and the first BAND interval; empty when no BAND is given"),
    _code_column("overlap", "overlapSky and overlapSpec combined"),
)


#: joins the DIDs of a merge row's ``obs_publisher_did`` (the legacy merge's ``pubdid=A;B;C``)
MERGE_SEPARATOR = ";"


def merge_row_dids(ident: str) -> list[str] | None:
    """The DIDs of a merge row's ID (``did1;did2;...``, two or more), or None for any other ID."""
    if MERGE_SEPARATOR not in ident:
        return None
    dids = list(dict.fromkeys(d.strip() for d in ident.split(MERGE_SEPARATOR) if d.strip()))
    return dids if len(dids) > 1 else None


@cache
def client_columns() -> tuple[tuple[OutputColumn, str], ...]:
    """(column, SQL expression over alias ``o``) of the answer: ObsCore's, then :data:`EXTRA_COLUMNS`."""
    out = []
    for col, expr in obscore_columns():
        if col.name == "s_region_galactic":
            col = replace(col, datatype="char", arraysize="*", xtype=None, pgtype="text",
                          description="Galactic footprint as POLYGON GALACTIC l1 b1 ... ln bn (degrees)")
            expr = "o.s_region_galactic_text"
        elif col.name in ("em_min", "em_max"):
            expr = f"o.{col.name}_known"
        out.append((col, expr))
    for col in EXTRA_COLUMNS:
        out.append((col, f'o."{col.name}"'))
    return tuple(out)


def _float(value: float) -> str:
    if math.isnan(value):
        raise ValueError("NaN bound")
    if math.isinf(value):
        return "'Infinity'::float8" if value > 0 else "'-Infinity'::float8"
    return f"({float(value)!r})::float8"


def _interval_code(lo_col: str, hi_col: str, iv: Interval) -> str:
    """AST overlap code of ``[lo_col, hi_col]`` (the dataset) and ``iv`` (the request)."""
    lo, hi = _float(iv.lo), _float(iv.hi)
    return (f"CASE WHEN {hi_col} < {lo} OR {lo_col} > {hi} THEN 1 "
            f"WHEN {lo_col} = {lo} AND {hi_col} = {hi} THEN 5 "
            f"WHEN {lo_col} <= {lo} AND {hi_col} >= {hi} THEN 3 "
            f"WHEN {lo_col} >= {lo} AND {hi_col} <= {hi} THEN 2 ELSE 4 END")


def region_box(shape: Circle | Range | Polygon) -> tuple[float, float, float, float]:
    """(l1, l2, b1, b2): the longitude/latitude box around ``shape``, degrees."""
    if isinstance(shape, Circle):
        return shape.lon - shape.radius, shape.lon + shape.radius, shape.lat - shape.radius, shape.lat + shape.radius
    if isinstance(shape, Range):
        return shape.lon1, shape.lon2, shape.lat1, shape.lat2
    lons = [lon for lon, _ in shape.vertices]
    ref = lons[0]
    # unwrap around the first vertex, so a polygon across l = 0 gives a small box
    lons = [ref + ((lon - ref + 180.0) % 360.0) - 180.0 for lon in lons]
    lats = [lat for _, lat in shape.vertices]
    return min(lons), max(lons), min(lats), max(lats)


def _box_polygon(shape: Circle | Range | Polygon) -> str:
    l1, l2, b1, b2 = region_box(shape)
    b1, b2 = max(b1, -90.0), min(b2, 90.0)
    corners = ((l1, b1), (l2, b1), (l2, b2), (l1, b2))
    return "POLYGON GALACTIC " + " ".join(f"{lon % 360.0:.6f} {lat:.6f}" for lon, lat in corners)


def build_sql(q: SiaQuery) -> str:
    """The client's answer to ``q``: matching datasets with their overlap codes, then merge rows."""
    if len(q.pos) != 1:
        raise UsageError("POS: the ViaLactea search takes exactly one region (CIRCLE l b r or RANGE l1 l2 b1 b2 "
                         f"with POSSYS=GALACTIC), got {len(q.pos)}")
    shape = q.pos[0]
    assert isinstance(shape, Circle | Range | Polygon)
    region = "o.s_region_galactic" if q.possys == "GALACTIC" else "o.s_region"
    sky = overlap_code_sql(region, shape)
    spec = _interval_code("o.em_min_known", "o.em_max_known", q.band[0]) if q.band else "NULL::integer"
    hits = (
        "SELECT o.*, coalesce(o.em_min, o.em_max) AS em_min_known, coalesce(o.em_max, o.em_min) AS em_max_known,\n"
        "  'POLYGON GALACTIC ' || array_to_string(vlkb_dali_polygon(o.s_region_galactic), ' ')"
        " AS s_region_galactic_text,\n"
        f"  {sky} AS sky\n"
        f"FROM ivoa.obscore AS o\nWHERE ({where_clause(q)})\n  AND (o.em_min IS NOT NULL OR o.em_max IS NOT NULL)"
    )
    coded = (
        f"SELECT h.*, h.sky AS \"overlapSky\", s.spec AS \"overlapSpec\",\n"
        "  CASE WHEN s.spec IS NULL OR s.spec = h.sky OR s.spec = 5 THEN h.sky WHEN h.sky = 5 THEN s.spec\n"
        "       WHEN h.sky = 1 OR s.spec = 1 THEN 1 ELSE 4 END AS \"overlap\", 1 AS vlkb_row_kind\n"
        f"FROM hits AS h CROSS JOIN LATERAL (SELECT {spec.replace('o.', 'h.')} AS spec) AS s"
    )
    columns = client_columns()
    datasets = ",\n  ".join(f'{expr} AS "{col.name}"' for col, expr in columns)
    merged = []
    for col, _ in columns:
        name = col.name
        if name in ("obs_collection", "obs_title"):
            value = f"o.{name}"
        elif name == "dataproduct_type":
            value = "min(o.dataproduct_type)"
        elif name == "obs_publisher_did":
            value = f"string_agg(o.obs_publisher_did, '{MERGE_SEPARATOR}' ORDER BY o.obs_publisher_did)"
        elif name in ("em_min", "vel_min"):
            value = f"min(o.{name}{'_known' if name == 'em_min' else ''})"
        elif name in ("em_max", "vel_max"):
            value = f"max(o.{name}{'_known' if name == 'em_max' else ''})"
        elif name == "s_region_galactic":
            value = f"'{_box_polygon(shape)}'::text"
        elif name in ("overlapSky", "overlap"):
            value = "0"
        else:
            value = f"NULL::{col.pgtype}"
        merged.append(f"{value} AS \"{name}\"")
    merge_select = ",\n  ".join(merged)
    names = ", ".join(f'"{col.name}"' for col, _ in columns)
    return (
        f"WITH hits AS (\n{hits}\n), coded AS (\n{coded}\n)\n"
        f"SELECT {names} FROM (\n"
        f"SELECT\n  {datasets},\n  o.vlkb_row_kind, o.obs_publisher_did AS vlkb_sort\nFROM coded AS o\n"
        "UNION ALL\n"
        f"SELECT\n  {merge_select},\n  0, NULL\nFROM coded AS o\n"
        "GROUP BY o.obs_collection, o.obs_title HAVING count(*) > 1\n"
        ") AS answer\nORDER BY obs_collection, obs_title, vlkb_row_kind DESC, vlkb_sort"
    )


async def search(pool: AsyncConnectionPool, q: SiaQuery, caller: Caller, *, timeout: float,
                 base_url: str | None = None) -> AsyncIterator[bytes]:
    """Run ``q`` for ``caller``; the result stream, already started (errors raise here). ``access_url``
    and ``preview`` start with ``base_url`` (the request's public base URL)."""
    return await run_query(pool, q, build_sql(q), [col for col, _ in client_columns()], caller, timeout=timeout,
                           base_url=base_url)
