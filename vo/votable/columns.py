"""Result columns as the writers see them: what the SQL yields, what each format writes.

A writer accepts any object with the attributes of :class:`ResultColumn` (the ADQL
translator's ``OutputColumn`` has them). :func:`plan_columns` turns each into a
:class:`ColumnPlan`: the value kind, the PostgreSQL type the result is cast to (so the COPY
wire format is exactly what the decoders expect), and the VOTable FIELD attributes.

Text is published as ``unicodeChar``: VOTable 1.4 (section 2.1) restricts ``char`` to ASCII
and astropy refuses other bytes in binary ``char`` fields, while ``unicodeChar`` (UTF-16 in
the binary serialisations) carries any text. The declarations (``schemas.TYPES``) publish text
columns as ``unicodeChar`` too, so TAP_SCHEMA and results agree (taplint MDQ). The exception
is a column whose values are known to be ASCII (``ascii`` true: an uploaded ``char`` column,
type ``char``), which stays ``char``.
Timestamps are ASCII and stay ``char`` with ``xtype="timestamp"`` (DALI 1.1 section 3.3.3).

Nothing here touches the database or XML.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["TWIN_PG", "ColumnPlan", "Kind", "ResultColumn", "plan_columns", "select_list"]

Kind = Literal["short", "int", "long", "float", "double", "boolean", "text", "timestamp", "double[]"]


class ResultColumn(Protocol):
    """What a writer needs to know about one result column.

    The members are read-only properties: writers only read them, so a frozen dataclass
    (the translator's ``OutputColumn``) or any object with these attributes qualifies.
    """

    @property
    def name(self) -> str: ...
    @property
    def datatype(self) -> str:
        """VOTable datatype: short, int, long, float, double, boolean, char (or unicodeChar)."""
    @property
    def arraysize(self) -> str | None: ...
    @property
    def xtype(self) -> str | None: ...
    @property
    def unit(self) -> str | None: ...
    @property
    def ucd(self) -> str | None: ...
    @property
    def utype(self) -> str | None: ...
    @property
    def description(self) -> str | None: ...
    @property
    def pgtype(self) -> str:
        """What the SQL yields: smallint, integer, bigint, real, double precision, boolean, text,
        timestamp, float8[]."""
    # optional ``ascii: bool``: text known to hold ASCII only, written as ``char`` (getattr)


#: kind -> (PostgreSQL cast target, width of the binary value or None when variable)
_PG: dict[Kind, tuple[str, int | None]] = {
    "short": ("smallint", 2),
    "int": ("integer", 4),
    "long": ("bigint", 8),
    "float": ("real", 4),
    "double": ("double precision", 8),
    "boolean": ("boolean", 1),
    "text": ("text", None),
    "timestamp": ("timestamp", 8),
    "double[]": ("double precision[]", None),
}

_TIMESTAMP_PG = {"timestamp", "timestamp without time zone", "timestamptz", "timestamp with time zone", "date"}

_SCALAR = {"short", "int", "long", "float", "double", "boolean"}

#: the composite type of stored DALI forms: ``b`` the VOTable binary array, ``t`` the text list
TWIN_PG = "vlkb_dali_twin"


@dataclass(frozen=True)
class ColumnPlan:
    """How one result column is fetched and written."""

    column: ResultColumn
    kind: Kind
    #: PostgreSQL type the result column is cast to
    pg: str
    #: bytes of the value in COPY BINARY for fixed-width kinds (timestamps: int64 microseconds)
    width: int | None
    #: the FIELD's datatype and arraysize as written
    datatype: str
    arraysize: str | None
    #: for text and arrays: the fixed number of characters / elements, None when variable
    count: int | None
    #: a unique XML ID for the FIELD
    field_id: str
    #: a DALI array read from its forms (``vlkb_dali_twin``, ``db/sql/adql_functions.sql``): the
    #: VOTable binary form (a variable-length array's count, then the values; a fixed-size one's
    #: values) and the text list. A polygon or path column stores them; a POINT makes them per row
    twin: bool = False

    @property
    def name(self) -> str:
        return self.column.name


def _fixed_count(arraysize: str | None) -> int | None:
    """n for ``arraysize="n"``; None for ``*``, ``n*`` and absent."""
    if arraysize is None or arraysize.endswith("*"):
        return None
    try:
        n = int(arraysize)
    except ValueError:
        raise ValueError(f"unsupported arraysize {arraysize!r}") from None
    if n < 1:
        raise ValueError(f"unsupported arraysize {arraysize!r}")
    return n


def _kind(col: ResultColumn) -> Kind:
    datatype = col.datatype
    pgtype = col.pgtype.strip().lower()
    if datatype in ("char", "unicodeChar"):
        if col.xtype == "timestamp" or pgtype in _TIMESTAMP_PG:
            return "timestamp"
        return "text"
    if datatype == "double" and (col.arraysize not in (None, "1") or pgtype.endswith("[]") or pgtype == TWIN_PG):
        return "double[]"
    if datatype in _SCALAR and col.arraysize in (None, "1"):
        return datatype  # type: ignore[return-value]
    raise ValueError(f"column {col.name}: cannot write datatype={datatype} arraysize={col.arraysize}")


_NCNAME_BAD = re.compile(r"[^A-Za-z0-9_.-]")


def _ids(names: Sequence[str]) -> list[str]:
    """Unique XML IDs (NCNames) derived from the column names."""
    seen: set[str] = set()
    out = []
    for name in names:
        base = _NCNAME_BAD.sub("_", name) or "col"
        if not (base[0].isalpha() or base[0] == "_"):
            base = "_" + base
        ident, n = base, 1
        while ident.lower() in seen:
            n += 1
            ident = f"{base}_{n}"
        seen.add(ident.lower())
        out.append(ident)
    return out


def plan_columns(columns: Sequence[ResultColumn]) -> list[ColumnPlan]:
    """The plans of ``columns``; ValueError for a type no writer supports."""
    if not columns:
        raise ValueError("a query result needs at least one column")
    plans = []
    for col, ident in zip(columns, _ids([c.name for c in columns]), strict=True):
        kind = _kind(col)
        pg, width = _PG[kind]
        datatype, arraysize, count = col.datatype, col.arraysize, None
        if kind == "text":
            # char only where the column is known to be ASCII (an uploaded char column)
            datatype = "char" if getattr(col, "ascii", False) else "unicodeChar"
            arraysize = arraysize or "*"
            count = _fixed_count(arraysize)
        elif kind == "timestamp":
            datatype, arraysize = "char", "*"
        elif kind == "double[]":
            arraysize = arraysize or "*"
            count = _fixed_count(arraysize)
        else:
            arraysize = None
        twin = col.pgtype.strip().lower() == TWIN_PG
        if twin and kind != "double[]":
            raise ValueError(f"column {col.name}: DALI forms are for double arrays")
        plans.append(ColumnPlan(col, kind, pg, width, datatype, arraysize, count, ident, twin))
    return plans


# -- SQL select lists for each COPY family ---------------------------------------------------------
#
# ``{c}`` stands for the result column (``{i}`` once placed by select_list). Text forms are chosen so
# the writers only need bulk byte replacements: ISO 8601 timestamps with a "T" (DALI 1.1 section
# 3.3.3), arrays as DALI space-separated lists, booleans as true/false where the format has no
# boolean of its own.

_TS = "CASE WHEN isfinite({c}::timestamp) THEN replace(({c}::timestamp)::text, ' ', 'T') END"
_DALI_LIST = "array_to_string({c}::double precision[], ' ', 'NaN')"
_JSON_ARRAY = (
    "replace(replace(replace(to_json({c}::double precision[])::text, "
    "'\"NaN\"', 'null'), '\"Infinity\"', 'null'), '\"-Infinity\"', 'null')"
)

Family = Literal["binary", "tabledata", "csv", "tsv", "json"]


#: stored DALI forms as each family reads them (the same bytes the float8[] templates make)
_TWIN = {
    "binary": "({c}).b",
    "json": "'[' || replace(replace(replace(replace(({c}).t, '-Infinity', 'null'), 'Infinity', 'null'), "
            "'NaN', 'null'), ' ', ',') || ']'",
}


def _template(plan: ColumnPlan, family: Family) -> str:
    if plan.twin and family in _TWIN:
        return _TWIN[family]
    cast = f"{{c}}::{plan.pg}"
    if family == "binary":
        return cast
    kind = plan.kind
    if kind == "timestamp":
        return f"to_json({_TS})" if family == "json" else _TS
    if kind == "double[]":
        if family == "json":
            return _JSON_ARRAY
        listed = "({c}).t" if plan.twin else _DALI_LIST
        if family == "tabledata" and plan.count:
            # a fixed-size array needs its n elements even when NULL (votlint); NaNs are NULL
            return f"coalesce({listed}, '{' '.join(['NaN'] * plan.count)}')"
        return listed
    if kind == "boolean":
        # TABLEDATA reads t/f (VOTable 1.4 section 2.1); the others get true/false.
        return cast if family == "tabledata" else f"({cast})::text"
    if kind == "text" and family == "json":
        return f"to_json({cast})"
    return cast


def select_list(plans: Sequence[ColumnPlan], family: Family, order: Sequence[int] | None = None) -> list[str]:
    """The select list (``db.query.copy_statement`` templates) that makes COPY produce what
    ``family``'s writer decodes: result column ``order[k]`` in position ``k``."""
    order = range(len(plans)) if order is None else order
    return [_template(plans[i], family).replace("{c}", f"{{{i}}}") for i in order]
