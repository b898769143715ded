"""The allow-list of ADQL functions and what each becomes in PostgreSQL + pgSphere.

Every function call of a query goes through :func:`call`. A name that is not listed here
is refused with that name in the message, whatever PostgreSQL would do with it
(``pg_sleep``, ``pg_read_file``, ``set_config``, ``dblink``, ``current_setting``, ...).

Numeric functions follow ADQL 2.1 section 2.3 (math) and 2.4 (string); the geometric ones
are in :mod:`vo.adql.geometry`; ``IN_UNIT`` (ADQL 2.1 section 2.3.2) converts at
translation time with astropy.units from the unit the value's column declares.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlglot import exp

from vo.adql import geometry
from vo.adql.values import (
    INTEGER_TYPES,
    NUMERIC_TYPES,
    Meta,
    Value,
    func,
    literal_string,
    numeric_result,
    unify,
)
from vo.errors import UsageError

if TYPE_CHECKING:
    from astropy.units import UnitBase

__all__ = ["AGGREGATES", "FUNCTIONS", "call", "in_unit"]

#: ADQL name -> PostgreSQL name of one-argument functions returning double precision
#: (numeric for numeric arguments).
_FLOAT_1 = {
    "DEGREES": "degrees", "RADIANS": "radians", "EXP": "exp", "LOG": "ln", "LOG10": "log",
    "SQRT": "sqrt", "SIN": "sin", "COS": "cos", "TAN": "tan", "ASIN": "asin", "ACOS": "acos",
    "ATAN": "atan", "COT": "cot",
}
_NUMERIC_ARG = {"exp", "ln", "log", "sqrt"}  # these have numeric variants in PostgreSQL
AGGREGATES = {"COUNT", "SUM", "AVG", "MIN", "MAX"}


def _arity(name: str, args: list[Value], *counts: int) -> None:
    if len(args) not in counts:
        want = " or ".join(str(c) for c in counts)
        raise UsageError(f"{name} takes {want} argument{'s' if counts != (1,) else ''}, not {len(args)}")


def _numeric(name: str, *args: Value) -> None:
    for a in args:
        if not a.is_numeric:
            raise UsageError(f"{name}: the argument must be a number, not {_kind(a)}")


def _kind(v: Value) -> str:
    return {"unknown": "a string", "text": "a string", "boolean": "a boolean"}.get(
        v.pg, "a geometry" if v.is_geometry else v.pg
    )


def _const(args: list[Value]) -> bool:
    return all(a.constant for a in args)


def _float_1(name: str, args: list[Value]) -> Value:
    _arity(name, args, 1)
    _numeric(name, *args)
    pg = _FLOAT_1[name]
    typ = "numeric" if args[0].pg == "numeric" and pg in _NUMERIC_ARG else "double precision"
    return Value(node=func(pg, args[0].as_int()), pg=typ, name=name.lower(), constant=_const(args))


def _abs(name: str, args: list[Value]) -> Value:
    _arity(name, args, 1)
    _numeric(name, *args)
    a = args[0]
    return Value(node=func("abs", a.node), pg=a.pg if a.pg != "unknown" else "double precision",
                 meta=Meta(unit=a.meta.unit), name="abs", constant=a.constant)


def _ceil_floor(name: str, args: list[Value]) -> Value:
    _arity(name, args, 1)
    _numeric(name, *args)
    a = args[0]
    typ = "double precision" if a.pg in ("real", "double precision", "unknown") else "numeric"
    pg = "ceil" if name == "CEILING" else "floor"
    return Value(node=func(pg, a.node), pg=typ, meta=Meta(unit=a.meta.unit), name=name.lower(), constant=a.constant)


def _to_numeric(v: Value) -> exp.Expression:
    return exp.Cast(this=v.node, to=exp.DataType.build("decimal"))


def _round_trunc(name: str, args: list[Value]) -> Value:
    _arity(name, args, 1, 2)
    _numeric(name, *args)
    pg = "round" if name == "ROUND" else "trunc"
    x = args[0]
    if len(args) == 1:
        typ = "numeric" if x.pg in (*INTEGER_TYPES, "numeric") else "double precision"
        node = func(pg, x.node)
    else:
        digits = args[1]
        if digits.pg not in INTEGER_TYPES:
            raise UsageError(f"{name}: the number of decimals must be an integer")
        # PostgreSQL rounds to n decimals only in numeric; the output column casts back.
        node = func(pg, _to_numeric(x), digits.node)
        typ = "numeric"
    return Value(node=node, pg=typ, meta=Meta(unit=x.meta.unit), name=name.lower(), constant=_const(args))


def _mod(name: str, args: list[Value]) -> Value:
    _arity(name, args, 2)
    _numeric(name, *args)
    a, b = args
    if a.pg in INTEGER_TYPES and b.pg in INTEGER_TYPES:
        return Value(node=func("mod", a.node, b.node), pg=numeric_result(a.pg, b.pg), name="mod",
                     exact=True, constant=_const(args))
    # PostgreSQL has mod() for integers and numeric only.
    return Value(node=func("mod", _to_numeric(a), _to_numeric(b)), pg="numeric", name="mod", constant=_const(args))


def _power(name: str, args: list[Value]) -> Value:
    _arity(name, args, 2)
    _numeric(name, *args)
    typ = "numeric" if all(a.pg == "numeric" for a in args) else "double precision"
    return Value(node=func("power", args[0].node, args[1].node), pg=typ, name="power", constant=_const(args))


def _atan2(name: str, args: list[Value]) -> Value:
    _arity(name, args, 2)
    _numeric(name, *args)
    return Value(node=func("atan2", args[0].node, args[1].node), pg="double precision", name="atan2",
                 exact=True, constant=_const(args))


def _pi(name: str, args: list[Value]) -> Value:
    _arity(name, args, 0)
    return Value(node=func("pi"), pg="double precision", name="pi", exact=True, constant=True)


def _rand(name: str, args: list[Value]) -> Value:
    if args:
        raise UsageError("RAND with a seed is not supported: use RAND()")
    return Value(node=func("random"), pg="double precision", name="rand", exact=True)


def _case(name: str, args: list[Value]) -> Value:
    _arity(name, args, 1)
    a = args[0]
    if a.pg not in ("text", "unknown"):
        raise UsageError(f"{name}: the argument must be a string, not {_kind(a)}")
    return Value(node=func(name.lower(), a.node), pg="text", name=name.lower(), exact=True, constant=a.constant)


def _coalesce(name: str, args: list[Value]) -> Value:
    if len(args) < 1:
        raise UsageError("COALESCE takes at least one argument")
    typ = unify(args, "COALESCE")
    if any(a.is_geometry for a in args):
        frames = {a.frame for a in args}
        frame = frames.pop() if len(frames) == 1 else None
    else:
        frame = None
    units = {a.meta.unit for a in args if a.pg != "unknown"}
    return Value(
        node=exp.Coalesce(this=args[0].as_int(), expressions=[a.as_int() for a in args[1:]]), pg=typ, frame=frame,
        meta=Meta(unit=units.pop() if len(units) == 1 else None), name="coalesce", constant=_const(args),
    )


def in_unit(name: str, args: list[Value]) -> Value:
    """IN_UNIT(value, 'unit'): ``value`` times the factor from its declared unit to ``unit``."""
    from astropy import units as u

    _arity(name, args, 2)
    value, target = args
    _numeric(name, value)
    wanted = literal_string(target)
    if wanted is None:
        raise UsageError("IN_UNIT: the unit must be a string literal such as 'arcsec'")
    source = value.meta.unit
    if not source:
        raise UsageError("IN_UNIT: the value has no known unit (use a column that declares one)")
    try:
        src, dst = _unit(source), _unit(wanted)
        factor = float(src.to(dst))
    except u.UnitConversionError:
        raise UsageError(f"IN_UNIT: cannot convert {source} to {wanted}") from None
    except (ValueError, TypeError) as err:
        raise UsageError(f"IN_UNIT: {err}") from None
    node = exp.Mul(this=exp.Paren(this=value.node), expression=exp.Literal.number(repr(factor)))
    return Value(node=node, pg="double precision", meta=Meta(unit=wanted), name="in_unit", constant=value.constant)


def _unit(text: str) -> UnitBase:
    from astropy import units as u

    for fmt in ("vounit", None):
        try:
            return u.Unit(text, format=fmt, parse_strict="raise")
        except ValueError:
            continue
    raise ValueError(f"unknown unit '{text}'")


def _aggregate(name: str, args: list[Value], distinct: bool, star: bool) -> Value:
    if name == "COUNT":
        if star:
            return Value(node=func("count", exp.Star()), pg="bigint", name="count", exact=True)
        _arity(name, args, 1)
        arg: exp.Expression = args[0].as_int()
        return Value(node=func("count", exp.Distinct(expressions=[arg]) if distinct else arg), pg="bigint",
                     name="count", exact=True)
    if star:
        raise UsageError(f"{name}(*) is not allowed; only COUNT(*)")
    _arity(name, args, 1)
    a = args[0]
    arg = exp.Distinct(expressions=[a.as_int()]) if distinct else a.as_int()
    if name in ("MIN", "MAX"):
        if a.is_geometry:
            raise UsageError(f"{name} cannot compare geometries")
        typ, exact = a.pg, a.exact or a.origin is not None
    else:
        _numeric(name, a)
        pg = "integer" if a.predicate else a.pg
        if name == "SUM":
            typ = {"smallint": "bigint", "integer": "bigint", "bigint": "numeric"}.get(pg, pg)
        else:
            typ = "numeric" if pg in (*INTEGER_TYPES, "numeric") else "double precision"
        exact = typ in NUMERIC_TYPES and typ != "numeric"
    if typ == "unknown":
        typ = "text" if name in ("MIN", "MAX") else "double precision"
    return Value(node=func(name.lower(), arg), pg=typ, meta=Meta(unit=a.meta.unit), name=name.lower(), exact=exact)


def _geo(fn: Callable[..., Value], arity: int | None = None) -> Callable[[str, list[Value]], Value]:
    def handler(name: str, args: list[Value]) -> Value:
        if arity is not None:
            _arity(name, args, arity)
            return fn(*args)
        return fn(args)

    return handler


#: ADQL name -> handler(name, translated args) -> Value
FUNCTIONS: dict[str, Callable[[str, list[Value]], Value]] = {
    **{name: _float_1 for name in _FLOAT_1},
    "ABS": _abs,
    "CEILING": _ceil_floor,
    "FLOOR": _ceil_floor,
    "ROUND": _round_trunc,
    "TRUNCATE": _round_trunc,
    "MOD": _mod,
    "POWER": _power,
    "ATAN2": _atan2,
    "PI": _pi,
    "RAND": _rand,
    "LOWER": _case,
    "UPPER": _case,
    "COALESCE": _coalesce,
    "IN_UNIT": in_unit,
    "POINT": _geo(geometry.point),
    "CIRCLE": _geo(geometry.circle),
    "BOX": _geo(geometry.box),
    "POLYGON": _geo(geometry.polygon),
    "CONTAINS": _geo(geometry.contains, 2),
    "INTERSECTS": _geo(geometry.intersects, 2),
    "DISTANCE": _geo(geometry.distance),
    "AREA": _geo(geometry.area, 1),
    "CENTROID": _geo(geometry.centroid, 1),
    "COORDSYS": _geo(geometry.coordsys, 1),
    "COORD1": _geo(lambda g: geometry.coord(g, 1), 1),
    "COORD2": _geo(lambda g: geometry.coord(g, 2), 1),
}


def call(name: str, args: list[Value], *, distinct: bool = False, star: bool = False, where: str = "") -> Value:
    """The translation of the ADQL function ``name`` applied to ``args``."""
    upper = name.upper()
    if upper in AGGREGATES:
        return _aggregate(upper, args, distinct, star)
    if distinct or star:
        raise UsageError(f"{upper}: DISTINCT and * are only allowed in aggregate functions")
    handler = FUNCTIONS.get(upper)
    if handler is None:
        raise UsageError(f"function {name} is not supported{where}")
    for a in args:
        if a.pg == "boolean" and upper not in ("COALESCE",):
            raise UsageError(f"{upper}: a condition cannot be a function argument")
    return handler(upper, args)

