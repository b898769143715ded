"""ADQL 2.1 to PostgreSQL + pgSphere (ARCHITECTURE decision 2). No HTTP, no database access.

:func:`translate` parses one ADQL query with sqlglot (:mod:`vo.adql.parse`), checks it on the
AST against a :class:`Catalog` of published tables and an allow-list of functions, rewrites
it (:mod:`vo.adql.translator`, :mod:`vo.adql.geometry`) and writes PostgreSQL text, with a
description of every output column. Every problem the query has raises
:class:`vo.errors.UsageError`; the database never sees SQL the translator did not write.

The translated SQL calls the functions of ``db/sql/adql_functions.sql`` (DALI serialisation of
pgSphere values, polygons from arrays), which the DDL step installs.

Supported: SELECT [ALL|DISTINCT] [TOP n], OFFSET, ORDER BY (expressions, output names,
column numbers), GROUP BY/HAVING, every join (INNER, LEFT/RIGHT/FULL OUTER, NATURAL,
USING, CROSS, comma), subqueries (FROM, IN, EXISTS, scalar), WITH, UNION/EXCEPT/INTERSECT
[ALL], CAST to the ADQL 2.1 types, the ADQL math, string and aggregate functions, LIKE,
ILIKE, BETWEEN, IN, IS NULL, CASE, COALESCE, ``||``, IN_UNIT, and the geometry of
ADQL 2.1 section 4.2 in the ICRS and GALACTIC frames.

Semantics worth knowing:

- Output names are unique: a repeated name gets ``_2``, ``_3``... (``glon, glon_2``);
  unnamed expressions are named after their function (``count``, ``distance``) or ``expr``.
- Arithmetic is PostgreSQL's (``7 / 2`` is 3); a non-ADQL ``LIMIT n`` is read as TOP.
- Frames: 'ICRS' ('', 'J2000', 'FK5' are read as ICRS) and 'GALACTIC'; a geometry without
  a coordinate system takes the frame of what it is compared with. Mixed frames are
  reconciled by rotating the constant side (:mod:`vo.adql.geometry`).
- CONTAINS includes the boundary (pgSphere's tolerance is 1e-9 rad); ``DISTANCE(p, q) < r``
  with a constant point is run as a containment in a circle (index-assisted, boundary
  included). BOX is the polygon of its four corners, joined by great circles.
- Circles wider than 90 degrees (pgSphere's limit) work for point containment, DISTANCE,
  AREA and output only. CENTROID works for points and circles only.
- DISTANCE also takes a point and a region (polygon, circle, path) in either order: the
  distance to the region's nearest point, 0 inside (``vlkb_distance`` for polygons and paths).
- ``catalog.schema.table`` names are read when the catalog is this service's
  (:data:`vo.adql.catalog.SERVICE_CATALOGS`); any other catalog is a table that does not exist.
"""

from __future__ import annotations

from importlib import resources

from sqlglot import exp
from sqlglot.errors import SqlglotError

from vo.adql.catalog import DEFAULT_SCHEMA_ALIASES, Catalog
from vo.adql.output import OutputColumn, Translation, convert, describe, stored_dali
from vo.adql.parse import generate, parse
from vo.adql.translator import Query, Translator
from vo.errors import UsageError

__all__ = [
    "DEFAULT_SCHEMA_ALIASES",
    "Catalog",
    "OutputColumn",
    "Translation",
    "functions_sql",
    "translate",
]

#: sqlglot failures that mean a query shape the translator does not handle (never a 500).
_SHAPE_ERRORS = (SqlglotError, AttributeError, KeyError, TypeError, ValueError, IndexError, NotImplementedError)


def translate(query: str, catalog: Catalog, *, maxrec: int | None = None) -> Translation:
    """Translate one ADQL query into PostgreSQL + pgSphere.

    Parameters
    ----------
    query
        The ADQL text (one statement; a trailing ``;`` is allowed).
    catalog
        The tables the query may read.
    maxrec
        When given, the SQL reads at most ``maxrec + 1`` rows, so the caller can tell an
        overflow (TAP 1.1 section 2.7.4); a smaller TOP still limits the rows to TOP.

    Raises
    ------
    vo.errors.UsageError
        For syntax errors, unknown tables, columns or functions, and anything not ADQL.
    """
    if maxrec is not None and maxrec < 0:
        raise UsageError("MAXREC must not be negative")
    tree = parse(query)
    if not isinstance(tree, (exp.Select, exp.SetOperation, exp.Subquery)):
        raise UsageError(f"only SELECT queries are allowed, not {tree.key.upper()}")
    translator = Translator(catalog)
    try:
        q = translator.query(tree, None, {})
        columns = _finish(q)
        _limit(q.node, maxrec)
        sql = generate(q.node)
    except UsageError:
        raise
    except RecursionError:
        raise UsageError("the query is nested too deeply") from None
    except _SHAPE_ERRORS as err:
        raise UsageError("the query uses a construct this service cannot translate") from err
    return Translation(sql=sql, columns=columns, tables=list(translator.tables))


def _finish(q: Query) -> list[OutputColumn]:
    """Convert the output columns of every leaf SELECT to their announced types."""
    columns = []
    grouped = any(select.args.get("group") or select.args.get("having") for select, _ in q.leaves)
    for i, out in enumerate(q.outputs):
        pg = out.value.pg
        stored = stored_dali([outputs[i].value for _, outputs in q.leaves], pg, grouped)
        for select, outputs in q.leaves:
            node, _ = convert(outputs[i].value, pg, stored)
            select.expressions[i].set("this", node)
        columns.append(describe(out.name, out.value, pg, stored))
    return columns


def _limit(node: exp.Expression, maxrec: int | None) -> None:
    if maxrec is None:
        return
    cap = maxrec + 1
    current = node.args.get("limit")
    if current is not None:
        cap = min(cap, int(current.expression.this))
    node.set("limit", exp.Limit(expression=exp.Literal.number(cap)))


def functions_sql() -> str:
    """The text of ``db/sql/adql_functions.sql``: the SQL functions translated queries call."""
    return resources.files("db").joinpath("sql", "adql_functions.sql").read_text(encoding="utf-8")
