"""The outermost SELECT: each output column converted to the type it announces.

The result set of a translated query has exactly the columns :class:`OutputColumn`
describes, with the PostgreSQL types ``pgtype`` names, so a writer can decode binary rows
without looking at the data: geometries become DALI ``float8[]`` in degrees
(``db/sql/adql_functions.sql``), or for a polygon or path column that stores its DALI forms and
for a POINT over numbers a ``vlkb_dali_twin`` the writers take the field of their format from
(:func:`vo.adql.geometry.twin`); ``numeric`` becomes
``double precision`` and wherever the type rules of :mod:`vo.adql.values` are approximate, an
explicit CAST makes them exact.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from vo.adql import geometry
from vo.adql.values import GEOMETRY, Value, votable_type

__all__ = ["OutputColumn", "Translation", "convert", "describe", "stored_dali"]


@dataclass(frozen=True)
class OutputColumn:
    """One column of the result set, described for VOTable FIELDs and for decoding.

    ``name`` is unique in the result (case-insensitively): a repeated name gets ``_2``,
    ``_3``... in select-list order (``SELECT * FROM a JOIN b ...`` gives ``id, ..., id_2``).
    """

    name: str
    datatype: str
    arraysize: str | None
    xtype: str | None
    unit: str | None
    ucd: str | None
    utype: str | None
    description: str | None
    pgtype: str
    #: text known to hold ASCII only (a ``char`` column referenced as is): published as ``char``
    ascii: bool = False

    @classmethod
    def of(
        cls, name: str, datatype: str, pgtype: str, arraysize: str | None = None, xtype: str | None = None,
        unit: str | None = None, ucd: str | None = None, utype: str | None = None, description: str | None = None,
    ) -> OutputColumn:
        """A column described by hand (tests, benchmarks, services that write their own SQL)."""
        return cls(name, datatype, arraysize, xtype, unit, ucd, utype, description, pgtype)


@dataclass(frozen=True)
class Translation:
    """A translated ADQL query."""

    sql: str
    columns: list[OutputColumn]
    #: qualified names (as declared) of the published or uploaded tables the query reads
    tables: list[str]


_OUTPUT_PG = {"numeric": "double precision", "unknown": "text"}


def stored_dali(values: list[Value], pg: str, grouped: bool) -> bool:
    """Whether an output column of type ``pg`` is read from its DALI forms (issue 16): in every
    branch a direct reference to a polygon or path column that stores them, or a POINT over numbers
    (:func:`vo.adql.geometry.twin`), outside GROUP BY (where the forms are not grouping columns)."""
    return pg in GEOMETRY and not grouped and all(geometry.twin(v) is not None for v in values)


def convert(value: Value, pg: str, stored: bool = False) -> tuple[exp.Expression, str]:
    """(node, pgtype) of an output value whose type is ``pg``: DALI arrays, ints, exact casts;
    ``stored``: the column's DALI forms (:func:`stored_dali`)."""
    if pg in GEOMETRY:
        node = geometry.twin(value) if stored else None
        if node is not None:
            return node, geometry.TWIN_PG
        return geometry.dali(value), "float8[]"
    if value.predicate:
        return value.as_int(), "integer"
    target = _OUTPUT_PG.get(pg, pg)
    node = value.node
    if target == value.pg and (value.exact or isinstance(node, exp.Column)):
        return node, target
    return exp.Cast(this=node, to=exp.DataType.build(target)), target


def describe(name: str, value: Value, pg: str, stored: bool = False) -> OutputColumn:
    """The OutputColumn of an output value whose final PostgreSQL type is ``pg``."""
    meta = value.meta
    if pg in GEOMETRY:
        datatype, arraysize, xtype = votable_type(pg)
        pgtype = geometry.TWIN_PG if stored else "float8[]"
    else:
        pgtype = "integer" if value.predicate else _OUTPUT_PG.get(pg, pg)
        datatype, arraysize, xtype = votable_type(pgtype)
        if meta.arraysize and pgtype == "text":
            arraysize = meta.arraysize
    return OutputColumn(
        name=name, datatype=datatype, arraysize=arraysize, xtype=xtype, unit=meta.unit, ucd=meta.ucd,
        utype=meta.utype, description=meta.description, pgtype=pgtype, ascii=meta.ascii and pgtype == "text",
    )
