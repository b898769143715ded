"""Translated expressions with their types: what the translator knows about each value.

A :class:`Value` is one translated (PostgreSQL) expression with the type PostgreSQL gives
it, the sky frame of a geometry, the metadata an output column inherits (unit, UCD, ...)
and, for plain column references, where the column comes from. The type rules here mirror
PostgreSQL's closely enough to pick integer versus floating arithmetic; output columns are
cast to the type they announce wherever the rules are approximate.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from vo.errors import UsageError

if TYPE_CHECKING:
    from vo.adql.catalog import ColumnInfo, TableInfo

__all__ = [
    "GEOMETRY",
    "INTEGER_TYPES",
    "NUMERIC_TYPES",
    "Meta",
    "Origin",
    "Shape",
    "Value",
    "func",
    "literal_float",
    "literal_string",
    "numeric_result",
    "unify",
    "votable_type",
]

#: Numeric types in PostgreSQL's order of widening (numeric sits between integers and floats).
NUMERIC_TYPES = ("smallint", "integer", "bigint", "numeric", "real", "double precision")
INTEGER_TYPES = ("smallint", "integer", "bigint")
#: pgSphere types and the DALI xtype of their serialisation.
GEOMETRY = {"spoint": "point", "scircle": "circle", "spoly": "polygon", "spath": None, "sbox": "polygon"}

_VOTABLE = {
    "smallint": ("short", None, None),
    "integer": ("int", None, None),
    "bigint": ("long", None, None),
    "real": ("float", None, None),
    "double precision": ("double", None, None),
    "numeric": ("double", None, None),
    "boolean": ("boolean", None, None),
    "text": ("char", "*", None),
    "unknown": ("char", "*", None),
    "timestamp": ("char", "*", "timestamp"),
    "spoint": ("double", "2", "point"),
    "scircle": ("double", "3", "circle"),
    "spoly": ("double", "*", "polygon"),
    "sbox": ("double", "*", "polygon"),
    "spath": ("double", "*", None),
}


@dataclass(frozen=True)
class Meta:
    """Metadata an output column carries over from a declared column or a function."""

    unit: str | None = None
    ucd: str | None = None
    utype: str | None = None
    description: str | None = None
    #: VOTable arraysize when the type's own is not right (fixed-length text, CHAR(n))
    arraysize: str | None = None
    #: the value is a declared ``char`` (ASCII) column as is, so the result may say ``char``
    ascii: bool = False


NO_META = Meta()


@dataclass(frozen=True)
class Origin:
    """A base-table column as referenced: its table, its declaration and the SQL qualifier used."""

    table: TableInfo
    column: ColumnInfo
    qualifier: str


@dataclass(frozen=True)
class Shape:
    """What a geometry constructor was built from, in degrees (for DALI output and huge circles)."""

    #: longitude, latitude values: one pair for a point or a circle's centre, n for a polygon
    coords: tuple[Value, ...]
    #: circles: the centre point and the radius
    center: Value | None = None
    radius: Value | None = None

    @property
    def radius_deg(self) -> float | None:
        """The radius in degrees when it is a literal number."""
        return literal_float(self.radius) if self.radius is not None else None

    def dali(self) -> list[exp.Expression]:
        """DALI array items: [lon, lat], [lon, lat, r] or [lon1, lat1, ...], as float8."""
        items = [*self.coords, *([self.radius] if self.radius is not None else [])]
        return [exp.Cast(this=v.node.copy(), to=exp.DataType.build("double")) for v in items]


@dataclass(frozen=True)
class Value:
    """One translated expression."""

    node: exp.Expression
    #: PostgreSQL type: a NUMERIC_TYPES member, boolean, text, timestamp, unknown (NULL or an
    #: untyped literal) or a pgSphere type
    pg: str
    frame: str | None = None
    meta: Meta = NO_META
    #: default output name (a column's name, a function's name)
    name: str | None = None
    #: where a plain reference to a base-table column comes from (for point-column rewrites)
    origin: Origin | None = None
    #: a boolean node standing for an ADQL integer 1/0 (CONTAINS, INTERSECTS)
    predicate: bool = False
    #: True when ``pg`` is certainly what PostgreSQL yields (no cast needed on output)
    exact: bool = False
    shape: Shape | None = field(default=None, compare=False)
    #: True when the node reads no column (a constant the planner folds)
    constant: bool = False

    def with_(self, **changes: Any) -> Value:
        """A copy with ``changes``."""
        return replace(self, **changes)

    @property
    def is_numeric(self) -> bool:
        """A number (or a NULL, which fits anywhere)."""
        return self.pg in NUMERIC_TYPES or self.pg == "unknown" and isinstance(self.node, exp.Null)

    @property
    def is_geometry(self) -> bool:
        """A pgSphere value."""
        return self.pg in GEOMETRY

    def as_int(self) -> exp.Expression:
        """The node as an ADQL value: predicates become integers 1/0."""
        if self.predicate:
            return exp.Cast(this=exp.Paren(this=self.node), to=exp.DataType.build("int"))
        return self.node


def func(name: str, *args: exp.Expression) -> exp.Anonymous:
    """A PostgreSQL function call node."""
    return exp.Anonymous(this=name, expressions=list(args))


def numeric_result(a: str, b: str) -> str:
    """The type of ``a op b`` for arithmetic in PostgreSQL (integers widen, floats win)."""
    if a == "unknown":
        return b if b in NUMERIC_TYPES else "double precision"
    if b == "unknown":
        return a
    ra, rb = NUMERIC_TYPES.index(a), NUMERIC_TYPES.index(b)
    hi = NUMERIC_TYPES[max(ra, rb)]
    if hi == "real" and "numeric" in (a, b) or hi == "real" and "bigint" in (a, b):
        return "double precision"
    return hi


def unify(values: list[Value], what: str) -> str:
    """The common type of ``values`` (CASE branches, COALESCE, UNION columns); UsageError if none."""
    types = [v.pg for v in values if v.pg != "unknown"]
    if not types:
        return "unknown"
    if all(t in NUMERIC_TYPES for t in types):
        out = types[0]
        for t in types[1:]:
            out = numeric_result(out, t)
        return out
    first = types[0]
    if all(t == first for t in types):
        return first
    if all(t in ("text", "timestamp") for t in types):
        return "text"
    raise UsageError(f"{what}: cannot mix {' and '.join(sorted(set(types)))} values")


def votable_type(pg: str) -> tuple[str, str | None, str | None]:
    """VOTable (datatype, arraysize, xtype) of a PostgreSQL/pgSphere type."""
    return _VOTABLE[pg]


def literal_float(value: Value) -> float | None:
    """The number a numeric literal (possibly negated) stands for, else None."""
    node = value.node
    sign = 1.0
    while isinstance(node, (exp.Neg, exp.Paren)):
        if isinstance(node, exp.Neg):
            sign = -sign
        node = node.this
    if isinstance(node, exp.Literal) and not node.is_string:
        return sign * float(node.this)
    return None


def literal_string(value: Value) -> str | None:
    """The text of a string literal, else None."""
    node = value.node
    if isinstance(node, exp.Literal) and node.is_string:
        return str(node.this)
    return None
