"""SIA 2.0 queries: the parameters (:class:`SiaQuery`) and the SQL they become over ``ivoa.obscore``.

Rules (SIA 2.0 section 2.1): values of one parameter are OR-ed, different parameters are
AND-ed; unknown parameters are ignored and a blank value counts as absent (:mod:`vo.dali`). Numeric
constraints are DALI intervals (:class:`vo.shapes.Interval`); a dataset matches an interval
parameter when its own range (BAND: em_min..em_max, TIME: t_min..t_max) overlaps it, or its
single value (FOV, SPATRES, EXPTIME, TIMERES, SPECRP) lies inside it. POS shapes are in ICRS
degrees and match footprints that overlap them (pgSphere ``&&`` on the GiST-indexed
``s_region``); the vlkb extension ``POSSYS=GALACTIC`` reads them as Galactic l/b and matches
``s_region_galactic`` instead. Footprints crossing l = 0 need no special case (pgSphere works
on the sphere), and a RANGE across 0 is written ``-0.5 0.5``, ``359.5 360.5`` or, as DALI 1.2
(section 3.9) and the ViaLactea client have it, ``359.5 0.5``.

The result is every ``ivoa.obscore`` column, streamed by the shared writers
(:mod:`vo.votable.writers`), as the query role with the caller's groups, so the database's
row-level security leaves out the datasets of surveys the caller may not read (the same rule
as TAP, ``db/sql/access.sql``).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Sequence
from functools import cache
from typing import Literal

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict

from schemas import find_table
from vo.adql.output import OutputColumn
from vo.caller import Caller
from vo.dali import POSSYS, DaliParams
from vo.errors import UsageError
from vo.results import QueryPlan, stream_select
from vo.shapes import Circle, Interval, Polygon, Range, Shape, parse_shape
from vo.votable.columns import ResultColumn
from vo.votable.writers import ResultFormat

__all__ = [
    "DPTYPES", "POL_STATES", "POSSYS", "SiaQuery", "build_sql", "check_polygons", "obscore_columns",
    "overlap_code_sql", "parse_pol", "region_literal", "search", "where_clause",
]

#: ObsCore 1.1 polarization states (pol_states vocabulary).
POL_STATES = ("I", "Q", "U", "V", "RR", "LL", "RL", "LR", "XX", "YY", "XY", "YX", "POLI", "POLA")

#: SIA string parameters: model field, obscore column (compared exactly).
_STRINGS = {
    "ID": ("ids", "obs_publisher_did"),
    "COLLECTION": ("collections", "obs_collection"),
    "FACILITY": ("facilities", "facility_name"),
    "INSTRUMENT": ("instruments", "instrument_name"),
    "DPTYPE": ("dptypes", "dataproduct_type"),
}

#: SIA interval parameters matched against one column: model field, obscore column (SIA 2.0 2.4-2.11).
_SINGLE_VALUED = {
    "FOV": ("fov", "s_fov"),
    "SPATRES": ("spatres", "s_resolution"),
    "EXPTIME": ("exptime", "t_exptime"),
    "TIMERES": ("timeres", "t_resolution"),
    "SPECRP": ("specrp", "em_res_power"),
}

#: Every dataset is a FITS file (reached through DataLink), so FORMAT=application/fits matches all.
_FILE_FORMATS = {"application/fits", "image/fits"}


class SiaQuery(BaseModel):
    """An SIA 2.0 query, parsed from case-folded parameters (each tuple is OR-ed)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    pos: tuple[Shape, ...] = ()
    possys: Literal["ICRS", "GALACTIC"] = "ICRS"
    band: tuple[Interval, ...] = ()
    time: tuple[Interval, ...] = ()
    pol: tuple[str, ...] = ()
    fov: tuple[Interval, ...] = ()
    spatres: tuple[Interval, ...] = ()
    exptime: tuple[Interval, ...] = ()
    timeres: tuple[Interval, ...] = ()
    specrp: tuple[Interval, ...] = ()
    ids: tuple[str, ...] = ()
    collections: tuple[str, ...] = ()
    facilities: tuple[str, ...] = ()
    instruments: tuple[str, ...] = ()
    dptypes: tuple[str, ...] = ()
    calib: tuple[int, ...] = ()
    targets: tuple[str, ...] = ()
    formats: tuple[str, ...] = ()
    maxrec: int
    format: ResultFormat

    @classmethod
    def from_params(cls, raw: dict[str, list[str]], *, maxrec_default: int, maxrec_limit: int) -> SiaQuery:
        """Validate the parameters; every problem is a UsageError naming the parameter."""
        p = DaliParams(raw)

        def many(name: str, parse: Callable[[str, str], object]) -> tuple:
            return tuple(parse(v, name) for v in p.repeated(name))

        fields: dict[str, object] = {
            "pos": many("POS", parse_shape),
            "possys": p.possys(),
            "band": many("BAND", _parse_positive),
            "time": many("TIME", Interval.parse),
            "pol": many("POL", parse_pol),
            "calib": many("CALIB", _parse_calib),
            "targets": tuple(p.repeated("TARGET")),
            "formats": tuple(p.repeated("FORMAT")),
        }
        for name, (field, _) in _SINGLE_VALUED.items():
            fields[field] = many(name, _parse_positive)
        for name, (field, _) in _STRINGS.items():
            fields[field] = tuple(p.repeated(name))
        fields["dptypes"] = tuple(_parse_dptype(v, "DPTYPE") for v in p.repeated("DPTYPE"))
        # TABLEDATA unless asked otherwise: the ViaLactea client reads TR/TD (vialactea-client.md 1.A.1).
        return cls(**fields, maxrec=p.maxrec(maxrec_default, maxrec_limit), format=p.response_format("votable/td"))


def _parse_positive(text: str, name: str) -> Interval:
    """An interval of a quantity that cannot be negative (wavelength, size, duration, resolving power)."""
    interval = Interval.parse(text, name)
    for bound in (interval.lo, interval.hi):
        if math.isfinite(bound) and bound < 0:
            raise UsageError(f"{name}: values cannot be negative, got {bound:g}; use -Inf for an open lower end")
    return interval


#: SIA 2.0 section 2.11: the data product types a query may ask for.
DPTYPES = ("image", "cube")


def _parse_dptype(text: str, name: str) -> str:
    kind = text.lower()
    if kind not in DPTYPES:
        raise UsageError(f"{name}: unknown data product type {text!r}; expected image or cube")
    return kind


def parse_pol(text: str, name: str) -> str:
    state = text.upper()
    if state not in POL_STATES:
        raise UsageError(f"{name}: unknown polarization state {text!r}; expected one of {' '.join(POL_STATES)}")
    return state


def _parse_calib(text: str, name: str) -> int:
    try:
        level = int(text)
    except ValueError:
        raise UsageError(f"{name}: not an integer: {text!r}") from None
    if not 0 <= level <= 4:
        raise UsageError(f"{name}: calibration level must be 0 to 4, got {level}")
    return level


# -- columns ---------------------------------------------------------------------------------------
_DALI = {"point": "vlkb_dali_point", "circle": "vlkb_dali_circle", "polygon": "vlkb_dali_polygon"}


@cache
def obscore_columns() -> tuple[tuple[OutputColumn, str], ...]:
    """Each ``ivoa.obscore`` column as the writers describe it, with its SQL expression (alias ``o``)."""
    out = []
    for col in find_table("ivoa.obscore").published_columns:
        info = col.info
        ref = f'o."{col.name}"'
        if col.type in _DALI:
            expr, pgtype = f"{_DALI[col.type]}({ref})", "float8[]"
        elif col.url == "relative":  # absolute with the session's public base URL (db/session.py)
            expr, pgtype = f"vlkb_public_url({ref})", info.pg
        else:
            expr, pgtype = ref, info.pg
        out.append((OutputColumn(
            name=col.name, datatype=info.datatype, arraysize=col.votable_arraysize, xtype=info.xtype,
            unit=col.unit, ucd=col.ucd, utype=col.utype, description=" ".join(col.description.split()),
            pgtype=pgtype,
        ), expr))
    return tuple(out)


# -- SQL -------------------------------------------------------------------------------------------
def _num(value: float) -> str:
    return f"({float(value)!r})"


def _rad(deg: float) -> str:
    return repr(math.radians(deg))


def _spoint(lon: float, lat: float) -> str:
    return f"spoint({_rad(lon % 360.0)}, {_rad(lat)})"


def _text(value: str) -> str:
    return sql.Literal(value).as_string()


def polygon_literal(shape: Polygon) -> str:
    """The pgSphere ``spoly`` constant of ``shape`` (degrees, longitudes taken modulo 360)."""
    body = ",".join(f"({lon % 360.0:.12f}d,{lat:.12f}d)" for lon, lat in shape.vertices)
    return f"spoly {_text('{' + body + '}')}"


def region_literal(shape: Circle | Range | Polygon) -> str | None:
    """The pgSphere constant (scircle, sbox, spoly) of ``shape``; None for a region pgSphere cannot hold
    as one value: a circle over 90 degrees, or a range over every longitude (see :func:`_shape_sql`)."""
    if isinstance(shape, Circle):
        if shape.radius > 90.0:
            return None
        return f"scircle({_spoint(shape.lon, shape.lat)}, {_rad(shape.radius)})"
    if isinstance(shape, Range):
        if shape.full_longitude:
            return None
        lat1, lat2 = max(shape.lat1, -90.0), min(shape.lat2, 90.0)
        # a south-west corner east of the north-east one makes pgSphere's box cross lon 0
        return f"sbox({_spoint(shape.lon1, lat1)}, {_spoint(shape.lon2, lat2)})"
    return polygon_literal(shape)


def _shape_sql(shape: Circle | Range | Polygon, column: str) -> str:
    literal = region_literal(shape)
    if literal is not None:
        return f"{column} && {literal}"
    if isinstance(shape, Circle):
        if shape.radius >= 180.0:
            return "TRUE"
        # pgSphere circles stop at 90 degrees: overlap a big circle = not inside the small
        # circle around the antipode that it leaves out.
        anti = _spoint(shape.lon + 180.0, -shape.lat)
        return f"NOT ({column} <@ scircle({anti}, {_rad(180.0 - shape.radius)}))"
    assert isinstance(shape, Range)
    lat1, lat2 = max(shape.lat1, -90.0), min(shape.lat2, 90.0)
    if lat1 <= -90.0 and lat2 >= 90.0:
        return "TRUE"
    # a box from 0 to 2 pi is a whole band of latitude in pgSphere
    return f"{column} && sbox(spoint(0, {_rad(lat1)}), spoint({repr(2 * math.pi)}, {_rad(lat2)}))"


def overlap_code_sql(column: str, shape: Circle | Range | Polygon) -> str:
    """SQL for the Starlink AST overlap code (``astOverlap``) of the footprint in ``column`` and ``shape``.

    1 no overlap, 2 the footprint lies inside the region, 3 the region lies inside the footprint
    (the dataset covers the whole request), 4 partial, 5 identical (polygons only). The codes of
    the ViaLactea Knowledge Base's search, which its client filters and ranks on.
    """
    literal = region_literal(shape)
    if literal is None:  # a region bigger than pgSphere's shapes: it contains any footprint it meets
        return f"CASE WHEN {_shape_sql(shape, column)} THEN 2 ELSE 1 END"
    same = f"WHEN {column} = {literal} THEN 5 " if isinstance(shape, Polygon) else ""
    return (f"CASE {same}WHEN {column} @> {literal} THEN 3 WHEN {column} <@ {literal} THEN 2 "
            f"WHEN {column} && {literal} THEN 4 ELSE 1 END")


def _overlap(lo_col: str, hi_col: str, iv: Interval) -> str:
    parts = []
    if math.isfinite(iv.hi):
        parts.append(f"{lo_col} <= {_num(iv.hi)}")
    if math.isfinite(iv.lo):
        parts.append(f"{hi_col} >= {_num(iv.lo)}")
    return " AND ".join(parts) or "TRUE"


def _any(conditions: Sequence[str]) -> str:
    return conditions[0] if len(conditions) == 1 else "(" + " OR ".join(f"({c})" for c in conditions) + ")"


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(_text(v) for v in dict.fromkeys(values))})"


def where_clause(q: SiaQuery) -> str:
    """The WHERE condition (over ``ivoa.obscore AS o``) of the datasets matching ``q``."""
    where: list[str] = []
    region = "o.s_region_galactic" if q.possys == "GALACTIC" else "o.s_region"
    if q.pos:
        where.append(_any([_shape_sql(s, region) for s in q.pos]))
    if q.band:
        where.append(_any([_overlap("o.em_min", "o.em_max", iv) for iv in q.band]))
    if q.time:
        where.append(_any([_overlap("o.t_min", "coalesce(o.t_max, o.t_min)", iv) for iv in q.time]))
    for field, column in _SINGLE_VALUED.values():
        intervals = getattr(q, field)
        if intervals:
            where.append(_any([_overlap(f"o.{column}", f"o.{column}", iv) for iv in intervals]))
    if q.pol:
        where.append(_any([f"o.pol_states LIKE {_text(f'%/{p}/%')}" for p in q.pol]))
    for field, column in _STRINGS.values():
        wanted = getattr(q, field)
        if wanted:
            where.append(_in(f"o.{column}", wanted))
    if q.calib:
        where.append(f"o.calib_level IN ({', '.join(str(c) for c in sorted(set(q.calib)))})")
    if q.targets:
        where.append(_in("lower(o.target_name)", [t.lower() for t in q.targets]))
    if q.formats and not any(f.lower() in _FILE_FORMATS for f in q.formats):
        where.append(_in("lower(o.access_format)", [f.lower() for f in q.formats]))
    return "\n  AND ".join(where) or "TRUE"


def build_sql(q: SiaQuery) -> str:
    """The SELECT of every obscore column for the datasets matching ``q``."""
    select = ",\n  ".join(expr for _, expr in obscore_columns())
    return (f"SELECT\n  {select}\nFROM ivoa.obscore AS o\nWHERE {where_clause(q)}\n"
            "ORDER BY o.obs_collection, o.obs_publisher_did")


async def check_polygons(conn: psycopg.AsyncConnection, q: SiaQuery) -> None:
    """Let pgSphere judge each polygon (self-crossing, edges of 180 degrees) before the query runs."""
    for shape in q.pos:
        if isinstance(shape, Polygon):
            try:
                async with conn.transaction():
                    await conn.execute(f"SELECT {polygon_literal(shape)}")
            except psycopg.Error as exc:
                reason = exc.diag.message_primary or "rejected by pgSphere"
                raise UsageError(f"POS: invalid polygon {shape.to_text()!r}: {reason}") from None


async def search(pool: AsyncConnectionPool, q: SiaQuery, caller: Caller, *, timeout: float,
                 base_url: str | None = None) -> AsyncIterator[bytes]:
    """Run ``q`` for ``caller`` and return the result stream, already started.

    Parameter, polygon and first-row failures raise here, before the first byte. ``base_url``
    is the public base URL ``access_url`` and ``preview`` start with (the request's).
    """
    return await run_query(pool, q, build_sql(q), [col for col, _ in obscore_columns()], caller, timeout=timeout,
                           base_url=base_url)


async def run_query(
    pool: AsyncConnectionPool, q: SiaQuery, statement: str, columns: Sequence[ResultColumn], caller: Caller, *,
    timeout: float, base_url: str | None = None,
) -> AsyncIterator[bytes]:
    """Run ``statement`` (made from ``q``) for ``caller``; the result stream, already started.

    Shared by SIA and the ViaLactea client's SIA answer: polygons are judged by pgSphere and
    the first rows are read before the first byte, so those failures still set the HTTP status.
    """
    async with pool.connection() as conn:
        await check_polygons(conn, q)
    plan = QueryPlan(statement, columns, q.format, q.maxrec, base_url=base_url)
    return await stream_select(pool, plan, caller, timeout=timeout)
