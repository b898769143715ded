"""Value expressions of ADQL, checked and rebuilt as PostgreSQL (the lower half of the translator).

:class:`ExpressionTranslator` translates one expression node at a time into a
:class:`~vo.adql.values.Value`. Only the node kinds of :data:`EXPR_ARGS` are accepted, each with
only the arguments listed there, so syntax the translator does not rebuild is refused rather
than dropped. Function calls go to :mod:`vo.adql.functions`; subqueries call back into the
query level (:meth:`query`, implemented by :class:`vo.adql.translator.Translator`).
"""

from __future__ import annotations

import re

from sqlglot import exp

from vo.adql import geometry
from vo.adql.catalog import Catalog
from vo.adql.functions import AGGREGATES, FUNCTIONS, call
from vo.adql.parse import position
from vo.adql.scope import Cte, Query, Scope
from vo.adql.values import INTEGER_TYPES, Meta, Value, literal_float, numeric_result, unify
from vo.errors import UsageError

__all__ = ["EXPR_ARGS", "ExpressionTranslator", "check_args", "int_literal", "snippet"]

CAST_TYPES = {
    exp.DType.SMALLINT: "smallint",
    exp.DType.INT: "integer",
    exp.DType.BIGINT: "bigint",
    exp.DType.FLOAT: "real",
    exp.DType.DOUBLE: "double precision",
    exp.DType.CHAR: "text",
    exp.DType.VARCHAR: "text",
    exp.DType.TIMESTAMP: "timestamp",
}
_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)
_ARITHMETIC = (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod)
_BINARY = {"this", "expression"}
#: The arguments each expression node may carry; a node with any other one set is refused, so
#: no syntax the translator does not rebuild (and would silently drop) gets through.
EXPR_ARGS: dict[type, set[str]] = {
    exp.Column: {"this", "table", "db", "catalog"},
    exp.Literal: {"this", "is_string"},
    exp.Null: set(),
    exp.Boolean: {"this"},
    exp.Paren: {"this"},
    exp.Neg: {"this"},
    exp.Add: _BINARY, exp.Sub: _BINARY, exp.Mul: _BINARY, exp.Mod: _BINARY,
    exp.Div: {"this", "expression", "typed", "safe"},
    exp.DPipe: {"this", "expression", "safe"},
    exp.EQ: _BINARY, exp.NEQ: _BINARY, exp.GT: _BINARY, exp.GTE: _BINARY, exp.LT: _BINARY, exp.LTE: _BINARY,
    exp.And: _BINARY, exp.Or: _BINARY,
    exp.Not: {"this"},
    exp.Is: {"this", "expression"},
    exp.Like: {"this", "expression", "negate"}, exp.ILike: {"this", "expression", "negate"},
    exp.Escape: _BINARY,
    exp.Between: {"this", "low", "high"},
    exp.In: {"this", "expressions", "query"},
    exp.Exists: {"this"},
    exp.Subquery: {"this"},
    exp.Case: {"this", "ifs", "default"},
    exp.Cast: {"this", "to"},
    exp.Anonymous: {"this", "expressions"},
    exp.Coalesce: {"this", "expressions"},
}


def snippet(node: exp.Expression) -> str:
    """A short text of a node for messages."""
    try:
        text = node.sql()
    except Exception:  # noqa: BLE001 - only used for a message
        text = node.key
    return text if len(text) <= 60 else text[:57] + "..."


def int_literal(node: exp.Expr | None, what: str) -> int:
    """The value of a non-negative integer literal; UsageError otherwise."""
    if isinstance(node, exp.Literal) and not node.is_string and str(node.this).isdigit():
        return int(node.this)
    raise UsageError(f"{what} must be a non-negative integer literal")


def check_args(node: exp.Expression, allowed: set[str], what: str) -> None:
    """UsageError if ``node`` has an argument set that is not in ``allowed``."""
    for key, value in node.args.items():
        if key not in allowed and value not in (None, [], False):
            raise UsageError(f"{what}: {key.upper().rstrip('_')} is not supported in ADQL{position(node)}")


class ExpressionTranslator:
    """Translates expressions; a query-level subclass provides :meth:`query`."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.tables: dict[str, None] = {}

    def query(self, node: exp.Expression, parent: Scope | None, ctes: dict[str, Cte]) -> Query:
        """Translate a subquery (implemented by the query level)."""
        raise NotImplementedError

    def without_catalog(self, node: exp.Column) -> exp.Column:
        """``catalog.schema.table.column`` as ``schema.table.column`` when the catalog is this service's."""
        catalog = node.args.get("catalog")
        if catalog is None:
            return node
        db, table = node.args.get("db"), node.args.get("table")
        if not (isinstance(catalog, exp.Identifier) and isinstance(db, exp.Identifier)
                and isinstance(table, exp.Identifier)):
            raise UsageError(f"unsupported column reference {snippet(node)}{position(node)}")
        self.catalog.check_catalog(catalog.name, bool(catalog.quoted), f"{catalog.name}.{db.name}.{table.name}",
                                   position(node))
        node = node.copy()
        node.set("catalog", None)
        return node

    def condition(self, node: exp.Expression, scope: Scope, ctes: dict[str, Cte], where: str) -> exp.Expression:
        """A boolean expression (WHERE, ON, HAVING, CASE WHEN)."""
        value = self.expr(node, scope, ctes)
        if value.predicate or value.pg == "boolean":
            return value.node
        raise UsageError(f"{where}: a condition is expected{position(node)}, not {snippet(node)}")

    def expr(self, node: exp.Expression, scope: Scope, ctes: dict[str, Cte]) -> Value:
        """Translate one value expression."""
        allowed = EXPR_ARGS.get(type(node))
        if isinstance(node, exp.If):  # sqlglot reads IF(a, b, c) as a CASE; ADQL has no IF
            raise UsageError(f"function IF is not supported{position(node)}; use CASE WHEN ... END")
        if allowed is None:
            raise UsageError(f"unsupported expression {snippet(node)}{position(node)}")
        for key, value in node.args.items():
            if key not in allowed and value not in (None, [], False):
                raise UsageError(f"unsupported syntax in {snippet(node)}{position(node)}")
        if isinstance(node, exp.Column):
            if isinstance(node.this, exp.Star):
                raise UsageError(f"{snippet(node)} is only allowed in the select list")
            if not isinstance(node.this, exp.Identifier):
                raise UsageError(f"unsupported expression {snippet(node)}{position(node)}")
            return scope.resolve(self.without_catalog(node))
        if isinstance(node, exp.Literal):
            return _literal(node)
        if isinstance(node, exp.Null):
            return Value(node=exp.Null(), pg="unknown", constant=True)
        if isinstance(node, exp.Boolean):
            return Value(node=node.copy(), pg="boolean", exact=True, constant=True)
        if isinstance(node, exp.Paren):
            inner = self.expr(node.this, scope, ctes)
            return inner.with_(node=exp.Paren(this=inner.node))
        if isinstance(node, exp.Neg):
            v = self.expr(node.this, scope, ctes)
            if not v.is_numeric:
                raise UsageError(f"unary minus needs a number{position(node)}")
            return v.with_(node=exp.Neg(this=v.node), origin=None, name=None, shape=None)
        if isinstance(node, _ARITHMETIC):
            return self._arithmetic(node, scope, ctes)
        if isinstance(node, exp.DPipe):
            a, b = self.expr(node.this, scope, ctes), self.expr(node.expression, scope, ctes)
            for v in (a, b):
                if v.is_geometry or v.pg == "boolean":
                    raise UsageError(f"|| concatenates strings and numbers only{position(node)}")
            return Value(node=exp.DPipe(this=a.as_int(), expression=b.as_int(), safe=False), pg="text",
                         exact=True, constant=a.constant and b.constant)
        if isinstance(node, _COMPARISONS):
            return self._comparison(node, scope, ctes)
        if isinstance(node, (exp.And, exp.Or)):
            left = self.condition(node.this, scope, ctes, node.key.upper())
            right = self.condition(node.expression, scope, ctes, node.key.upper())
            return Value(node=type(node)(this=left, expression=right), pg="boolean", exact=True)
        if isinstance(node, exp.Not):
            return Value(node=exp.Not(this=self.condition(node.this, scope, ctes, "NOT")), pg="boolean", exact=True)
        if isinstance(node, exp.Is):
            if not isinstance(node.expression, exp.Null):
                raise UsageError(f"only IS [NOT] NULL is supported{position(node)}")
            v = self.expr(node.this, scope, ctes)
            return Value(node=exp.Is(this=v.as_int(), expression=exp.Null()), pg="boolean", exact=True)
        if isinstance(node, (exp.Like, exp.ILike)):
            return self._like(node, None, scope, ctes)
        if isinstance(node, exp.Escape) and isinstance(node.this, (exp.Like, exp.ILike)):
            return self._like(node.this, node.expression, scope, ctes)
        if isinstance(node, exp.Between):
            vals = [self.expr(node.args[k], scope, ctes) for k in ("this", "low", "high")]
            self._comparable(vals, node)
            return Value(node=exp.Between(this=vals[0].as_int(), low=vals[1].as_int(), high=vals[2].as_int()),
                         pg="boolean", exact=True)
        if isinstance(node, exp.In):
            return self._in(node, scope, ctes)
        if isinstance(node, exp.Exists):
            q = self.query(node.this, scope, ctes)
            return Value(node=exp.Exists(this=q.node), pg="boolean", exact=True)
        if isinstance(node, exp.Subquery):
            return self._scalar_subquery(node, scope, ctes)
        if isinstance(node, exp.Case):
            return self._case(node, scope, ctes)
        if isinstance(node, exp.Cast):
            return self._cast(node, scope, ctes)
        if isinstance(node, exp.Anonymous):
            return self._call(node, scope, ctes)
        if isinstance(node, exp.Coalesce):
            args = [node.this, *node.expressions]
            return call("COALESCE", [self.expr(a, scope, ctes) for a in args])
        raise UsageError(f"unsupported expression {snippet(node)}{position(node)}")

    def _arithmetic(self, node: exp.Expression, scope: Scope, ctes: dict[str, Cte]) -> Value:
        a, b = self.expr(node.this, scope, ctes), self.expr(node.expression, scope, ctes)
        ops: dict[type[exp.Expression], str] = {exp.Add: "+", exp.Sub: "-", exp.Mul: "*", exp.Div: "/", exp.Mod: "%"}
        op = ops[type(node)]
        for v in (a, b):
            if not v.is_numeric and not v.predicate:
                raise UsageError(f"the operator {op} needs numbers{position(node)}, not {snippet(v.node)}")
        pa = "integer" if a.predicate else a.pg
        pb = "integer" if b.predicate else b.pg
        typ = numeric_result(pa, pb)
        if isinstance(node, exp.Div):
            new: exp.Expression = exp.Div(this=a.as_int(), expression=b.as_int(), typed=True, safe=False)
        else:
            new = type(node)(this=a.as_int(), expression=b.as_int())
        unit = _arith_unit(node, a, b)
        exact = a.exact and b.exact and typ in INTEGER_TYPES
        return Value(node=new, pg=typ, meta=Meta(unit=unit), exact=exact, constant=a.constant and b.constant)

    def _comparison(self, node: exp.Expression, scope: Scope, ctes: dict[str, Cte]) -> Value:
        within = self._distance_within(node, scope, ctes)
        if within is not None:
            return within
        a, b = self.expr(node.this, scope, ctes), self.expr(node.expression, scope, ctes)
        if isinstance(node, (exp.EQ, exp.NEQ)):
            for pred, other in ((a, b), (b, a)):
                lit = literal_float(other)
                if pred.predicate and lit in (0.0, 1.0):
                    # CONTAINS(...) = 1 is the predicate itself, so the GiST index can serve it.
                    truth = (lit == 1.0) == isinstance(node, exp.EQ)
                    return Value(node=pred.node if truth else exp.Not(this=exp.Paren(this=pred.node)),
                                 pg="boolean", exact=True)
        self._comparable([a, b], node)
        return Value(node=type(node)(this=a.as_int(), expression=b.as_int()), pg="boolean", exact=True)

    def _distance_within(self, node: exp.Expression, scope: Scope, ctes: dict[str, Cte]) -> Value | None:
        """``DISTANCE(p, q) < r`` as ``p <@ scircle(q, r)`` so a point column's index serves it."""
        if not isinstance(node, (exp.LT, exp.LTE, exp.GT, exp.GTE)):
            return None
        left, right = node.this, node.expression
        if isinstance(node, (exp.GT, exp.GTE)):
            left, right = right, left
        if not (isinstance(left, exp.Anonymous) and left.name.upper() == "DISTANCE"):
            return None
        radius = geometry.constant_number(right)
        if radius is None or not 0 <= radius <= 90:
            return None
        args = [self.expr(a, scope, ctes) for a in left.expressions]
        return geometry.distance_within(args, right.copy())

    @staticmethod
    def _comparable(values: list[Value], node: exp.Expression) -> None:
        kinds = set()
        for v in values:
            if v.is_geometry:
                raise UsageError(f"geometries cannot be compared; use CONTAINS or INTERSECTS{position(node)}")
            if v.is_numeric or v.predicate:
                kinds.add("number")
            elif v.pg in ("text", "timestamp", "boolean"):
                kinds.add(v.pg)
        if "number" in kinds and kinds & {"text", "timestamp"}:
            raise UsageError(f"a number cannot be compared with a string{position(node)}")
        if "boolean" in kinds and len(kinds) > 1:
            raise UsageError(f"a boolean can only be compared with a boolean{position(node)}")

    def _like(self, node: exp.Expression, escape: exp.Expression | None, scope: Scope, ctes: dict[str, Cte]) -> Value:
        a, b = self.expr(node.this, scope, ctes), self.expr(node.expression, scope, ctes)
        for v in (a, b):
            if v.pg not in ("text", "unknown"):
                raise UsageError(f"{node.key.upper()} compares strings{position(node)}")
        new: exp.Expression = type(node)(this=a.node, expression=b.node)
        if escape is not None:
            e = self.expr(escape, scope, ctes)
            if not isinstance(e.node, exp.Literal) or not e.node.is_string:
                raise UsageError("ESCAPE takes a string literal")
            new = exp.Escape(this=new, expression=e.node)
        if node.args.get("negate"):
            new = exp.Not(this=exp.Paren(this=new))
        return Value(node=new, pg="boolean", exact=True)

    def _in(self, node: exp.In, scope: Scope, ctes: dict[str, Cte]) -> Value:
        check_args(node, {"this", "expressions", "query"}, "IN")
        v = self.expr(node.this, scope, ctes)
        query = node.args.get("query")
        if query is not None:
            q = self.query(query.this if isinstance(query, exp.Subquery) else query, scope, ctes)
            if len(q.outputs) != 1:
                raise UsageError(f"the subquery of IN must select one column{position(node)}")
            self._comparable([v, q.outputs[0].value], node)
            return Value(node=exp.In(this=v.as_int(), query=exp.Subquery(this=q.node)), pg="boolean", exact=True)
        items = [self.expr(e, scope, ctes) for e in node.expressions]
        self._comparable([v, *items], node)
        return Value(node=exp.In(this=v.as_int(), expressions=[i.as_int() for i in items]), pg="boolean", exact=True)

    def _scalar_subquery(self, node: exp.Subquery, scope: Scope, ctes: dict[str, Cte]) -> Value:
        if node.args.get("alias"):
            raise UsageError(f"unexpected alias on a subquery{position(node)}")
        q = self.query(node.this, scope, ctes)
        if len(q.outputs) != 1:
            raise UsageError(f"a subquery used as a value must select one column{position(node)}")
        out = q.outputs[0].value
        return Value(node=exp.Subquery(this=q.node), pg="integer" if out.predicate else out.pg, frame=out.frame,
                     meta=out.meta, exact=out.exact)

    def _case(self, node: exp.Case, scope: Scope, ctes: dict[str, Cte]) -> Value:
        operand = node.args.get("this")
        op_value = self.expr(operand, scope, ctes) if operand is not None else None
        ifs, results = [], []
        for branch in node.args.get("ifs") or []:
            if op_value is not None:
                match = self.expr(branch.this, scope, ctes)
                self._comparable([op_value, match], branch)
                cond = match.as_int()
            else:
                cond = self.condition(branch.this, scope, ctes, "CASE WHEN")
            result = self.expr(branch.args["true"], scope, ctes)
            results.append(result)
            ifs.append(exp.If(this=cond, true=result.as_int()))
        default = node.args.get("default")
        default_value = self.expr(default, scope, ctes) if default is not None else None
        if default_value is not None:
            results.append(default_value)
        if any(r.is_geometry for r in results):
            raise UsageError(f"CASE cannot return geometries{position(node)}")
        typ = unify(results, "CASE")
        new = exp.Case(this=op_value.as_int() if op_value else None, ifs=ifs,
                       default=default_value.as_int() if default_value else None)
        return Value(node=new, pg=typ)

    def _cast(self, node: exp.Cast, scope: Scope, ctes: dict[str, Cte]) -> Value:
        to = node.args["to"]
        if not isinstance(to, exp.DataType) or to.this not in CAST_TYPES:
            raise UsageError(f"CAST to {snippet(to)} is not supported; ADQL 2.1 types are SMALLINT, INTEGER,"
                             " BIGINT, REAL, DOUBLE PRECISION, CHAR(n), VARCHAR(n), TIMESTAMP")
        v = self.expr(node.this, scope, ctes)
        if v.is_geometry:
            raise UsageError(f"geometries cannot be CAST{position(node)}")
        params = to.expressions
        arraysize = None
        target = to.copy()
        if to.this in (exp.DType.CHAR, exp.DType.VARCHAR):
            if len(params) > 1:
                raise UsageError("CHAR/VARCHAR take one length")
            if params:
                n = int_literal(params[0].this if isinstance(params[0], exp.DataTypeParam) else params[0], "length")
                if n < 1:
                    raise UsageError("CHAR/VARCHAR length must be positive")
                arraysize = str(n) if to.this == exp.DType.CHAR else f"{n}*"
            elif to.this == exp.DType.CHAR:
                arraysize = "1"
        elif params:
            raise UsageError(f"CAST to {to.this.value}: unexpected parameters")
        pg = CAST_TYPES[to.this]
        exact = pg != "text" or to.this == exp.DType.VARCHAR and not params
        return Value(node=exp.Cast(this=v.as_int(), to=target), pg=pg, meta=Meta(unit=v.meta.unit, arraysize=arraysize),
                     exact=exact, constant=v.constant)

    def _call(self, node: exp.Anonymous, scope: Scope, ctes: dict[str, Cte]) -> Value:
        name = node.name
        if not isinstance(node.this, str):
            raise UsageError(f"unsupported function call {snippet(node)}{position(node)}")
        distinct = star = False
        args: list[Value] = []
        raw = node.expressions
        if len(raw) == 1 and isinstance(raw[0], exp.Star):
            star = True
            raw = []
        elif len(raw) == 1 and isinstance(raw[0], exp.Distinct):
            distinct = True
            raw = raw[0].expressions
        upper = name.upper()
        if upper not in FUNCTIONS and upper not in AGGREGATES:
            raise UsageError(f"function {name} is not supported{position(node)}")
        for arg in raw:
            if isinstance(arg, (exp.Star, exp.Distinct)):
                raise UsageError(f"{upper}: unexpected {snippet(arg)}{position(node)}")
            if isinstance(arg, (exp.Kwarg, exp.PropertyEQ, exp.Lambda)):
                raise UsageError(f"{upper}: named or lambda arguments are not ADQL{position(node)}")
            args.append(self.expr(arg, scope, ctes))
        try:
            return call(name, args, distinct=distinct, star=star, where=position(node))
        except UsageError as err:
            if "(line" in err.message:
                raise
            raise UsageError(f"{err.message}{position(node)}") from None


_NUMBER = re.compile(r"(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _literal(node: exp.Literal) -> Value:
    if node.is_string:
        return Value(node=exp.Literal.string(str(node.this)), pg="unknown", constant=True)
    text = str(node.this)
    if not _NUMBER.fullmatch(text):
        raise UsageError(f"invalid number {text}{position(node)}")
    if text.isdigit():
        n = int(text)
        pg = "integer" if n < 2**31 else "bigint" if n < 2**63 else "numeric"
    else:
        pg = "numeric"
    return Value(node=exp.Literal.number(text), pg=pg, exact=True, constant=True)


def _arith_unit(node: exp.Expression, a: Value, b: Value) -> str | None:
    """The unit of an arithmetic result, where it is obvious (for IN_UNIT): scaling keeps it."""
    lit_a, lit_b = literal_float(a) is not None, literal_float(b) is not None
    if isinstance(node, (exp.Add, exp.Sub)):
        if a.meta.unit == b.meta.unit or lit_b:
            return a.meta.unit
        return b.meta.unit if lit_a else None
    if isinstance(node, exp.Mul):
        if lit_b:
            return a.meta.unit
        if lit_a:
            return b.meta.unit
        return None
    if isinstance(node, exp.Div) and lit_b:
        return a.meta.unit
    return None
