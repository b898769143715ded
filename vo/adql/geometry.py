"""ADQL geometry (ADQL 2.1 section 4.2) as pgSphere 1.2 expressions.

ADQL angles are degrees, pgSphere's radians. pgSphere has no sky frames, so a frame travels
with each translated geometry (:attr:`Value.frame`): ``POINT('GALACTIC', ...)`` is
GALACTIC, a declared geometry column has the frame :mod:`vo.adql.catalog` reads from its UCD,
and a geometry built without a coordinate system (ADQL 2.1 style) has none and adopts the
frame of whatever it is compared with. When the two arguments of CONTAINS, INTERSECTS or
DISTANCE are in different frames, the constant one (else the second) is rotated with a
pgSphere Euler transformation, so an indexed column stays bare on its side of the operator.

What pgSphere cannot do is refused here with a message, never left to fail in the database:
CENTROID of a polygon, and anything but point containment or distance for circles wider
than 90 degrees (pgSphere's ``scircle`` limit).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from sqlglot import exp

from vo.adql.catalog import GALACTIC, ICRS
from vo.adql.parse import SphereOp
from vo.adql.values import Meta, Shape, Value, func, literal_float, literal_string
from vo.errors import UsageError

__all__ = [
    "TWIN_PG",
    "twin",
    "EULER_ICRS_TO_GALACTIC",
    "area",
    "box",
    "centroid",
    "constant_number",
    "circle",
    "contains",
    "coord",
    "coordsys",
    "dali",
    "distance",
    "distance_within",
    "intersects",
    "parse_frame",
    "point",
    "polygon",
]

#: ZXZ Euler angles (radians) of pgSphere's ``strans`` taking ICRS to Galactic coordinates:
#: ``spoint(ra, dec) + strans(*EULER_ICRS_TO_GALACTIC)`` is ``spoint(l, b)``. Computed once with
#: astropy (the ICRS->Galactic rotation matrix R = Rz(psi) Rx(theta) Rz(phi), pgSphere applying
#: Rz(phi) first); tests/adql/test_geometry.py recomputes them and checks points against astropy.
EULER_ICRS_TO_GALACTIC = (-1.795236556146168, 1.097319001841602, -2.5668221288620985)

_DEG = Meta(unit="deg")
_FRAMES = {"ICRS": ICRS, "J2000": ICRS, "FK5": ICRS, "GALACTIC": GALACTIC}
#: STC-S reference positions and flavours that may follow the frame in a coordsys string.
_STC_EXTRA = {
    "GEOCENTER", "BARYCENTER", "HELIOCENTER", "TOPOCENTER", "LSR", "LSRK", "LSRD",
    "UNKNOWNREFPOS", "SPHERICAL2", "CARTESIAN2",
}
#: (left, right) pgSphere types with a ``<@`` (contained-in) operator.
_CONTAINED = {
    ("spoint", "scircle"), ("spoint", "spoly"), ("spoint", "sbox"), ("spoint", "spath"),
    ("scircle", "scircle"), ("scircle", "spoly"), ("scircle", "sbox"),
    ("spoly", "spoly"), ("spoly", "scircle"), ("spoly", "sbox"),
    ("sbox", "sbox"), ("sbox", "scircle"), ("sbox", "spoly"),
    ("spath", "scircle"), ("spath", "spoly"), ("spath", "sbox"),
}
#: (left, right) pgSphere types with a ``&&`` (overlap) operator.
_OVERLAP = {
    (a, b) for a in ("scircle", "spoly", "sbox", "spath") for b in ("scircle", "spoly", "sbox", "spath")
}
_KIND = {"spoint": "a point", "scircle": "a circle", "spoly": "a polygon", "sbox": "a box", "spath": "a path"}


def _float8(node: exp.Expression) -> exp.Expression:
    return exp.Cast(this=node, to=exp.DataType.build("double"))


def _radians(value: Value) -> exp.Expression:
    return func("radians", value.node)


def parse_frame(value: Value, where: str) -> str | None:
    """The frame a coordsys argument names (ICRS, GALACTIC, or None for UNKNOWNFRAME)."""
    text = literal_string(value)
    if text is None:
        raise UsageError(f"{where}: the coordinate system must be a string literal such as 'ICRS'")
    words = text.upper().split()
    if not words:
        return ICRS  # '' (ADQL 2.0 examples): the service default
    if words[0] == "UNKNOWNFRAME":
        frame = None
    elif words[0] in _FRAMES:
        frame = _FRAMES[words[0]]
    else:
        raise UsageError(f"{where}: unsupported coordinate system '{text}'; use 'ICRS' or 'GALACTIC'")
    if any(w not in _STC_EXTRA for w in words[1:]):
        raise UsageError(f"{where}: unsupported coordinate system '{text}'; use 'ICRS' or 'GALACTIC'")
    return frame


def _split_frame(args: list[Value], where: str) -> tuple[str | None, list[Value], bool]:
    """(frame, remaining args, whether a coordsys was given): a leading string is the coordsys."""
    if args and literal_string(args[0]) is not None:
        return parse_frame(args[0], where), args[1:], True
    return None, args, False


def _numbers(args: list[Value], where: str) -> None:
    for a in args:
        if not a.is_numeric:
            kind = "a string" if a.pg in ("text", "unknown") else "a geometry" if a.is_geometry else a.pg
            raise UsageError(f"{where}: coordinates must be numbers, not {kind}")


def _check_lat(value: Value, where: str) -> None:
    lat = literal_float(value)
    if lat is not None and abs(lat) > 90:
        raise UsageError(f"{where}: latitude {lat:g} is outside [-90, 90]")


def _constant(values: list[Value]) -> bool:
    return all(v.constant for v in values)


def _coords(p: Value) -> tuple[Value, Value]:
    """Longitude and latitude (degrees) of a point value: its POINT arguments, else read from it."""
    if p.shape is not None and len(p.shape.coords) == 2:
        return p.shape.coords[0], p.shape.coords[1]
    lon = func("degrees", func("long", p.node.copy()))
    lat = func("degrees", func("lat", p.node.copy()))
    return (Value(node=lon, pg="double precision", constant=p.constant),
            Value(node=lat, pg="double precision", constant=p.constant))


def _centre(args: list[Value], n_rest: int, where: str) -> tuple[str | None, Value, list[Value]]:
    """(frame, centre point, other args) of CIRCLE/BOX given as (point, ...) or (lon, lat, ...)."""
    frame, args, given = _split_frame(args, where)
    if len(args) == n_rest + 1 and args[0].pg == "spoint":
        center = args[0]
        if given and center.frame not in (None, frame):
            raise UsageError(f"{where}: the centre point is in another coordinate system")
        return (frame if given else center.frame), center, args[1:]
    if len(args) != n_rest + 2:
        raise UsageError(
            f"{where} takes a coordinate system (optional), a centre (longitude, latitude or a point)"
            f" and {'a radius' if n_rest == 1 else 'a width and a height'}"
        )
    center = point(args[:2]).with_(frame=frame)
    return frame, center, args[2:]


def point(args: list[Value]) -> Value:
    """POINT([coordsys,] lon, lat)."""
    frame, rest, _ = _split_frame(args, "POINT")
    if len(rest) != 2:
        raise UsageError("POINT takes a coordinate system (optional), a longitude and a latitude")
    lon, lat = rest
    _numbers(rest, "POINT")
    _check_lat(lat, "POINT")
    node: exp.Expression = func("spoint", _radians(lon), _radians(lat))
    # The point column optimisation: POINT over the columns a stored spoint is generated from
    # *is* that column (the same expression), and the stored column has a GiST index.
    if lon.origin and lat.origin and lon.origin.qualifier == lat.origin.qualifier:
        key = (lon.origin.column.name.lower(), lat.origin.column.name.lower())
        stored = lon.origin.table.points.get(key)
        if stored is not None and (frame is None or stored.frame in (None, frame)):
            node = exp.column(stored.name, table=lon.origin.qualifier, quoted=True)
    return Value(
        node=node, pg="spoint", frame=frame, name="point", shape=Shape(coords=(lon, lat)),
        constant=_constant(rest),
    )


def circle(args: list[Value]) -> Value:
    """CIRCLE([coordsys,] lon, lat, radius) or CIRCLE([coordsys,] point, radius)."""
    frame, center, (radius,) = _centre(args, 1, "CIRCLE")
    if not radius.is_numeric:
        raise UsageError("CIRCLE: the radius must be a number")
    r = literal_float(radius)
    if r is not None and r < 0:
        raise UsageError(f"CIRCLE: the radius {r:g} is negative")
    shape = Shape(coords=_coords(center), center=center, radius=radius)
    return Value(
        node=func("scircle", center.node, _radians(radius)), pg="scircle", frame=frame, name="circle",
        shape=shape, constant=center.constant and radius.constant,
    )


def _spoly(coords: list[Value]) -> exp.Expression:
    """An spoly from lon, lat, lon, lat... values in degrees: a literal when all are numbers."""
    numbers = [literal_float(c) for c in coords]
    if all(n is not None for n in numbers):
        vertices = [(numbers[i] % 360, numbers[i + 1]) for i in range(0, len(numbers), 2)]  # type: ignore[operator]
        if any(vertices[i] == vertices[i - 1] for i in range(len(vertices))) or len(set(vertices)) < 3:
            raise UsageError("POLYGON: the vertices must be distinct (pgSphere needs three different points)")
        pairs = ",".join(
            f"({math.radians(numbers[i])!r},{math.radians(numbers[i + 1])!r})"  # type: ignore[arg-type]
            for i in range(0, len(numbers), 2)
        )
        return exp.Cast(this=exp.Literal.string("{" + pairs + "}"), to=exp.DataType.build("spoly", udt=True))
    return func("vlkb_spoly", exp.Array(expressions=[_float8(c.node.copy()) for c in coords]))


def _polygon_value(coords: list[Value], frame: str | None, name: str) -> Value:
    return Value(
        node=_spoly(coords), pg="spoly", frame=frame, name=name, shape=Shape(coords=tuple(coords)),
        constant=_constant(coords),
    )


def polygon(args: list[Value]) -> Value:
    """POLYGON([coordsys,] lon1, lat1, lon2, lat2, lon3, lat3, ...) or POLYGON([coordsys,] p1, p2, p3, ...)."""
    frame, args, given = _split_frame(args, "POLYGON")
    if args and all(a.pg == "spoint" for a in args):
        if len(args) < 3:
            raise UsageError("POLYGON needs at least three vertices")
        frames = {a.frame for a in args} - {None}
        if len(frames) > 1 or (given and frames - {frame}):
            raise UsageError("POLYGON: the vertices are in different coordinate systems")
        if not given:
            frame = frames.pop() if frames else None
        coords = [c for a in args for c in _coords(a)]
    else:
        if len(args) < 6 or len(args) % 2:
            raise UsageError("POLYGON needs at least three vertices given as longitude, latitude pairs")
        _numbers(args, "POLYGON")
        for lat in args[1::2]:
            _check_lat(lat, "POLYGON")
        coords = args
    return _polygon_value(coords, frame, "polygon")


def box(args: list[Value]) -> Value:
    """BOX([coordsys,] lon, lat, width, height) or BOX([coordsys,] point, width, height), as a polygon.

    ADQL 2.0 section 2.4.3: the corners are the centre plus or minus half the width in
    longitude and half the height in latitude; pgSphere joins them with great circles.
    """
    frame, center, (w, h) = _centre(args, 2, "BOX")
    lon, lat = _coords(center)
    _numbers([lon, lat, w, h], "BOX")
    nums = [literal_float(v) for v in (lon, lat, w, h)]
    if all(n is not None for n in nums):
        x, y, dx, dy = (float(n) for n in nums)  # type: ignore[arg-type]
        if dx <= 0 or dy <= 0:
            raise UsageError("BOX: width and height must be positive")
        corners = [x - dx / 2, y - dy / 2, x + dx / 2, y - dy / 2, x + dx / 2, y + dy / 2, x - dx / 2, y + dy / 2]
        coords = [_number(c) for c in corners]
    else:
        const = _constant([lon, lat, w, h])

        def half(v: Value) -> exp.Expression:
            two = exp.Literal.number("2.0")  # not 2: an integer width must not divide to 0
            return exp.Div(this=exp.Paren(this=v.node.copy()), expression=two, typed=True, safe=False)

        def shift(v: Value, d: Value, sign: int) -> Value:
            op = exp.Add if sign > 0 else exp.Sub
            return Value(node=op(this=exp.Paren(this=v.node.copy()), expression=half(d)), pg="double precision",
                         constant=const)

        coords = [shift(lon, w, -1), shift(lat, h, -1), shift(lon, w, 1), shift(lat, h, -1),
                  shift(lon, w, 1), shift(lat, h, 1), shift(lon, w, -1), shift(lat, h, 1)]
    return _polygon_value(coords, frame, "box")


def _number(x: float) -> Value:
    node: exp.Expression = exp.Literal.number(repr(abs(x)))
    if x < 0:
        node = exp.Neg(this=node)
    return Value(node=node, pg="double precision", constant=True)


def _transform(value: Value, to: str) -> Value:
    """``value`` rotated into frame ``to`` (its frame must be the other one)."""
    strans = func("strans", *(exp.Literal.number(repr(a)) for a in EULER_ICRS_TO_GALACTIC))
    op = "+" if to == GALACTIC else "-"  # "-" applies the inverse transformation
    shape = value.shape
    if shape is not None and shape.center is not None:
        shape = Shape(coords=shape.coords, center=_transform(shape.center, to), radius=shape.radius)
    return value.with_(node=SphereOp(this=value.node, expression=strans, op=op), frame=to, shape=shape)


def _align(a: Value, b: Value) -> tuple[Value, Value]:
    """The two arguments in one frame: the constant one (else the second) is rotated."""
    if a.frame is None or b.frame is None or a.frame == b.frame:
        return a, b
    if a.constant and not b.constant:
        return _transform(a, b.frame), b
    return a, _transform(b, a.frame)


def _huge(v: Value) -> bool:
    return v.pg == "scircle" and v.shape is not None and v.shape.radius_deg is not None and v.shape.radius_deg > 90


def _geometry(v: Value, where: str) -> None:
    if not v.is_geometry:
        raise UsageError(f"{where}: arguments must be geometries (POINT, CIRCLE, BOX, POLYGON or a geometry column)")


def contains(a: Value, b: Value) -> Value:
    """CONTAINS(a, b): 1 if a lies within b. A boolean predicate node (see Value.predicate)."""
    _geometry(a, "CONTAINS")
    _geometry(b, "CONTAINS")
    a, b = _align(a, b)
    if _huge(b):
        if a.pg != "spoint":
            raise UsageError("CONTAINS: circles wider than 90 degrees can only contain points")
        center = b.shape.center  # type: ignore[union-attr]
        dist = SphereOp(this=a.node, expression=center.node, op="<->")  # type: ignore[union-attr]
        radius = func("radians", b.shape.radius.node)  # type: ignore[union-attr]
        node: exp.Expression = exp.LTE(this=dist, expression=radius)
    elif _huge(a):
        raise UsageError("CONTAINS: circles wider than 90 degrees cannot be inside other shapes")
    elif a.pg == "spoint" and b.pg == "spoint":
        node = exp.EQ(this=a.node, expression=b.node)
    elif (a.pg, b.pg) in _CONTAINED:
        node = SphereOp(this=a.node, expression=b.node, op="<@")
    else:
        raise UsageError(f"CONTAINS: {_KIND[a.pg]} cannot be tested for containment in {_KIND[b.pg]}")
    return Value(node=node, pg="integer", predicate=True, name="contains", constant=a.constant and b.constant)


def intersects(a: Value, b: Value) -> Value:
    """INTERSECTS(a, b); with a point it is CONTAINS(point, other) (ADQL 2.1 section 4.2.9)."""
    _geometry(a, "INTERSECTS")
    _geometry(b, "INTERSECTS")
    if a.pg == "spoint":
        return contains(a, b).with_(name="intersects")
    if b.pg == "spoint":
        return contains(b, a).with_(name="intersects")
    a, b = _align(a, b)
    if _huge(a) or _huge(b):
        raise UsageError("INTERSECTS: circles wider than 90 degrees can only be tested against points")
    if (a.pg, b.pg) not in _OVERLAP:
        raise UsageError(f"INTERSECTS: {_KIND[a.pg]} and {_KIND[b.pg]} cannot be tested")
    node = SphereOp(this=a.node, expression=b.node, op="&&")
    return Value(node=node, pg="integer", predicate=True, name="intersects", constant=a.constant and b.constant)


def _distance_args(args: list[Value]) -> tuple[Value, Value]:
    """The two geometries of DISTANCE(g1, g2) or DISTANCE(lon1, lat1, lon2, lat2)."""
    if len(args) == 4:
        return point(args[:2]), point(args[2:])
    if len(args) == 2:
        return args[0], args[1]
    raise UsageError("DISTANCE takes two geometries or four numbers (lon1, lat1, lon2, lat2)")


def _point_and_region(p: Value, q: Value) -> tuple[Value, Value]:
    """(point, other) of DISTANCE's arguments, in either order; UsageError unless one is a point."""
    for v in (p, q):
        if not v.is_geometry:
            raise UsageError("DISTANCE: arguments must be points or regions (CIRCLE, POLYGON, BOX, a region column)")
    if p.pg != "spoint" and q.pg == "spoint":
        p, q = q, p
    if p.pg != "spoint":
        raise UsageError("DISTANCE: one argument must be a point (the distance between two regions is not supported)")
    if q.pg not in ("spoint", "scircle", "spoly", "spath"):
        raise UsageError(f"DISTANCE from a point to {_KIND[q.pg]} is not supported")
    return p, q


def distance(args: list[Value]) -> Value:
    """DISTANCE in degrees: between two points, or from a point to a region (either order).

    ADQL 2.1 section 4.2.5 defines DISTANCE between points; ObsCore users also write
    ``DISTANCE(s_region, POINT(...))`` for how far a footprint is from a position, so a region
    argument means the distance to its nearest point: 0 when the point is inside, else the
    distance to its boundary (pgSphere's ``<->`` for circles, ``vlkb_distance`` of
    db/sql/adql_functions.sql for polygons and paths).
    """
    p, q = _point_and_region(*_distance_args(args))
    p, q = _align(p, q)
    if q.pg == "spoint" or (q.pg == "scircle" and not _huge(q)):
        radians: exp.Expression = SphereOp(this=p.node, expression=q.node, op="<->")
    elif q.pg == "scircle":
        # wider than pgSphere's circles: distance to the centre less the radius, 0 inside
        center = q.shape.center  # type: ignore[union-attr]
        to_center = SphereOp(this=p.node, expression=center.node, op="<->")  # type: ignore[union-attr]
        edge = exp.Sub(this=to_center, expression=func("radians", q.shape.radius.node))  # type: ignore[union-attr]
        radians = exp.Greatest(this=_float8(exp.Literal.number(0)), expressions=[edge])
    else:
        radians = func("vlkb_distance", p.node, q.node)
    return Value(node=func("degrees", radians), pg="double precision", meta=_DEG, name="distance", exact=True,
                 constant=p.constant and q.constant)


def area(g: Value) -> Value:
    """AREA(g) in square degrees."""
    _geometry(g, "AREA")
    meta = Meta(unit="deg**2")
    if g.pg == "spoint":
        node: exp.Expression = _float8(exp.Literal.number(0))
    elif g.pg == "spath":
        raise UsageError("AREA: a path has no area")
    elif _huge(g):
        # 2 pi (1 - cos r) steradians; pgSphere cannot build the circle.
        r = func("radians", g.shape.radius.node)  # type: ignore[union-attr]
        sr = exp.Mul(
            this=exp.Mul(this=exp.Literal.number(2), expression=func("pi")),
            expression=exp.Paren(this=exp.Sub(this=exp.Literal.number(1), expression=func("cos", r))),
        )
        node = func("degrees", func("degrees", sr))
    else:
        node = func("degrees", func("degrees", func("area", g.node)))  # sr -> deg^2
    return Value(node=node, pg="double precision", meta=meta, name="area", exact=True, constant=g.constant)


def coord(g: Value, which: int) -> Value:
    """COORD1 (longitude) or COORD2 (latitude) of a point, in degrees."""
    name = f"COORD{which}"
    if g.pg != "spoint":
        raise UsageError(f"{name}: the argument must be a point")
    node = func("degrees", func("long" if which == 1 else "lat", g.node))
    return Value(node=node, pg="double precision", meta=_DEG, name=name.lower(), exact=True, constant=g.constant)


def coordsys(g: Value) -> Value:
    """COORDSYS(g): the frame the translation knows for g (a constant)."""
    _geometry(g, "COORDSYS")
    text = g.frame or "UNKNOWNFRAME"
    return Value(node=exp.Literal.string(text), pg="text", name="coordsys", exact=True, constant=True)


def centroid(g: Value) -> Value:
    """CENTROID(g): a point's own position or a circle's centre; pgSphere has none for polygons."""
    _geometry(g, "CENTROID")
    if g.pg == "spoint":
        return g.with_(name="centroid")
    if g.pg == "scircle":
        if _huge(g):
            return g.shape.center.with_(name="centroid")  # type: ignore[union-attr]
        return Value(node=func("center", g.node), pg="spoint", frame=g.frame, name="centroid", constant=g.constant)
    raise UsageError(f"CENTROID of {_KIND[g.pg]} is not supported (pgSphere computes it for circles only)")


#: the PostgreSQL type of an output column read from its DALI forms (db/sql/adql_functions.sql)
TWIN_PG = "vlkb_dali_twin"


def twin(g: Value) -> exp.Expression | None:
    """``ROW(bin, text)::vlkb_dali_twin``: the DALI forms of ``g`` the writers read, or None.

    A polygon or path column with stored forms has them: a direct reference to a base-table
    column (its qualifier names that table in the same SELECT); the values are those :func:`dali`
    computes, formatted once at write time. A POINT over numbers (``POINT('ICRS', ra, dec)``)
    has them made from its two numbers in the row: the 16 bytes of the two big-endian doubles a
    fixed-size BINARY/BINARY2 array holds, and ``lon lat`` as the text formats write it (the
    output of ``float8send`` and of float8's text form, the same bytes :func:`dali`'s array gives);
    each writer reads only its own field, and either is a few operations where pgSphere's round
    trip, or building an array, took most of a catalogue's streaming time (issue 16).
    """
    if g.pg == "spoint" and g.shape is not None:
        lon, lat = g.shape.dali()
        binary = exp.DPipe(this=func("float8send", lon), expression=func("float8send", lat))
        lon_t, lat_t = (exp.Cast(this=c.copy(), to=exp.DataType.build("text")) for c in (lon, lat))
        text = exp.DPipe(this=exp.DPipe(this=lon_t, expression=exp.Literal.string(" ")), expression=lat_t)
        return exp.Cast(this=exp.Tuple(expressions=[binary, text]), to=exp.DataType.build(TWIN_PG, udt=True))
    if g.origin is None or not isinstance(g.node, exp.Column):
        return None
    forms = g.origin.table.twins.get(g.origin.column.name.lower())
    if forms is None:
        return None
    fields = [exp.column(c.name, table=g.origin.qualifier, quoted=True) for c in forms]
    return exp.Cast(this=exp.Tuple(expressions=fields), to=exp.DataType.build(TWIN_PG, udt=True))


def dali(g: Value) -> exp.Expression:
    """A float8[] in degrees serialising ``g`` as DALI 1.1 section 3.3 says (for output columns)."""
    if g.shape is not None and (g.constant or _huge(g)):
        return exp.Array(expressions=g.shape.dali())
    if g.pg == "spoint" and g.shape is not None:
        # POINT over numbers (columns, expressions) is those two numbers, which the table holds:
        # the array of them (NULL when one is) costs the database next to nothing, where the
        # round trip through pgSphere (spoint, long/lat, degrees) took most of the time of a
        # catalogue's SELECT *, POINT(...) (issue 16) and could move the last digit
        nulls = [exp.Is(this=c.node.copy(), expression=exp.Null()) for c in g.shape.coords]
        return exp.Case(ifs=[exp.If(this=exp.or_(*nulls), true=exp.Null())],
                        default=exp.Array(expressions=g.shape.dali()))
    name = {
        "spoint": "vlkb_dali_point", "scircle": "vlkb_dali_circle", "spoly": "vlkb_dali_polygon",
        "sbox": "vlkb_dali_polygon", "spath": "vlkb_dali_path",
    }[g.pg]
    return func(name, g.node)


def _index_rank(v: Value) -> int:
    """How likely a GiST index serves ``v <@ circle``: 2 for an indexed point column (or the
    stored column POINT(lon, lat) was rewritten to), 1 for another column, 0 otherwise."""
    if not isinstance(v.node, exp.Column):
        return 0
    if v.origin is None:
        return 2 if v.shape is not None else 1
    name = v.origin.column.name.lower()
    indexes = v.origin.table.decl.indexes
    return 2 if any(i.method == "gist" and i.columns[0].lower() == name for i in indexes) else 1


_ARITHMETIC: dict[type[exp.Expression], Callable[[float, float], float]] = {
    exp.Add: float.__add__, exp.Sub: float.__sub__, exp.Mul: float.__mul__, exp.Div: float.__truediv__,
}


def constant_number(node: exp.Expression) -> float | None:
    """The value of a numeric literal or of literals under + - * / (``2/3600.``), else None."""
    if isinstance(node, exp.Paren):
        return constant_number(node.this)
    if isinstance(node, exp.Neg):
        v = constant_number(node.this)
        return None if v is None else -v
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            return float(node.this)
        except ValueError:
            return None
    op = _ARITHMETIC.get(type(node))
    if op is not None:
        a, b = constant_number(node.this), constant_number(node.expression)
        if a is None or b is None or (op is float.__truediv__ and b == 0):
            return None
        return op(a, b)
    return None


def distance_within(args: list[Value], radius: exp.Expression) -> Value | None:
    """``DISTANCE(p, q) <= radius`` as ``p <@ scircle(q, radius)``.

    When one point is a constant it is the circle's centre; in a join (a cross-match with an
    uploaded table) the point a GiST index is likelier to serve stays on the left, so the
    planner can run an index scan per row of the other table. Returns None when the rewrite
    does not apply (the caller then translates the comparison as written). ``<@`` includes
    the circle's boundary, so ``<`` and ``<=`` differ only for points at exactly ``radius``.
    """
    if len(args) not in (2, 4):
        return None
    p, q = _distance_args(args)
    if p.pg == "spoint" and q.pg in ("scircle", "spoly", "spath") or q.pg == "spoint" and p.pg in (
        "scircle", "spoly", "spath"
    ):
        return _region_within(*_point_and_region(p, q), radius)
    if p.pg != "spoint" or q.pg != "spoint" or (p.constant and q.constant):
        return None
    if p.constant or (not q.constant and _index_rank(q) > _index_rank(p)):
        p, q = q, p
    p, q = _align(p, q)
    # a cross-match (q a column) with a constant radius pgSphere accepts: the leakproof twin of
    # scircle(), so p's GiST index still serves the join on a table with row-level security
    degrees = constant_number(radius)
    circle = "vlkb_join_circle" if not q.constant and degrees is not None and 0 < degrees <= 90 else "scircle"
    node = SphereOp(this=p.node, expression=func(circle, q.node, func("radians", radius)), op="<@")
    return Value(node=node, pg="boolean", exact=True)


def _region_within(p: Value, region: Value, radius: exp.Expression) -> Value | None:
    """``DISTANCE(region, p) <= radius`` as ``region && scircle(p, radius)``, for a constant point.

    A region is within ``radius`` of a point exactly when it meets the circle of that radius
    around it, and ``&&`` can use the region column's GiST index. Other shapes of the
    comparison (a point column, a circle wider than 90 degrees) are computed row by row.
    """
    if not p.constant or region.constant or _huge(region):
        return None
    p, region = _align(p, region)
    circle = func("scircle", p.node, func("radians", radius))
    return Value(node=SphereOp(this=region.node, expression=circle, op="&&"), pg="boolean", exact=True)
