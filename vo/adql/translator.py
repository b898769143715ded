"""The translation proper: ADQL queries checked and rewritten into PostgreSQL (the upper half).

:class:`Translator` walks queries (SELECT, set operations, WITH, subqueries in FROM and in
expressions) on top of :class:`~vo.adql.from_clause.FromTranslator` (FROM items and joins)
and :class:`~vo.adql.expressions.ExpressionTranslator` (values). Names are resolved by
:mod:`vo.adql.scope`, functions by :mod:`vo.adql.functions`, geometry by
:mod:`vo.adql.geometry`; output columns are finished by :mod:`vo.adql.output`.
"""

from __future__ import annotations

from dataclasses import replace

from sqlglot import exp

from vo.adql.expressions import check_args, int_literal, snippet
from vo.adql.from_clause import FromTranslator
from vo.adql.parse import position
from vo.adql.scope import Cte, Entry, Output, Query, Scope, same_name
from vo.adql.values import Value, unify
from vo.errors import UsageError

__all__ = ["Output", "Query", "Translator"]

#: Arguments of exp.Select the translator handles; any other one that is set is refused.
_SELECT_ARGS = {
    "expressions", "from_", "joins", "where", "group", "having", "order", "limit", "offset",
    "distinct", "with_", "kind", "hint", "exclude", "operation_modifiers",
}
_SETOP_ARGS = {"this", "expression", "distinct", "order", "limit", "offset", "with_"}


def _columns(n: int) -> str:
    return f"{n} column" if n == 1 else f"{n} columns"


class Translator(FromTranslator):
    """Translates one ADQL statement; collects the published tables it reads (:attr:`tables`)."""

    def query(self, node: exp.Expression, parent: Scope | None, ctes: dict[str, Cte]) -> Query:
        """Translate a SELECT, a set operation or a parenthesised query (with its WITH clause)."""
        while isinstance(node, exp.Subquery) and not node.args.get("alias") and isinstance(node.this, exp.Query):
            extra = [k for k, v in node.args.items() if k != "this" and v not in (None, [], False)]
            if extra:
                raise UsageError(f"{extra[0].upper().rstrip('_')} after a parenthesised query is not supported")
            # sqlglot types the narrowed .this as the exp.Query mixin; every node it builds is an Expression
            node = node.this  # type: ignore[assignment]
        with_ = node.args.get("with_")
        new_with = None
        if with_ is not None:
            ctes, new_with = self._with(with_, parent, ctes)
        if isinstance(node, exp.Select):
            q = self.select(node, parent, ctes)
        elif isinstance(node, exp.SetOperation):
            q = self.setop(node, parent, ctes)
        else:
            raise UsageError(f"a query is expected{position(node)}, not {snippet(node)}")
        if new_with is not None:
            q.node.set("with_", new_with)
        return q

    def _with(self, with_: exp.With, parent: Scope | None, ctes: dict[str, Cte]) -> tuple[dict[str, Cte], exp.With]:
        if with_.args.get("recursive"):
            raise UsageError("WITH RECURSIVE is not supported")
        ctes = dict(ctes)
        out = []
        names: set[str] = set()
        for cte in with_.expressions:
            alias = cte.args.get("alias")
            if alias is None or alias.args.get("columns"):
                raise UsageError("WITH: give each query a name, without a column list")
            name = alias.this.name
            if name.lower() in names:
                raise UsageError(f"WITH: the name {name} is used twice")
            names.add(name.lower())
            q = self.query(cte.this, parent, ctes)
            ctes[name.lower()] = Cte(name=name, outputs=q.outputs)
            out.append(exp.CTE(this=q.node, alias=exp.TableAlias(this=exp.to_identifier(name, quoted=True))))
        return ctes, exp.With(expressions=out)

    def setop(self, node: exp.SetOperation, parent: Scope | None, ctes: dict[str, Cte]) -> Query:
        """UNION / EXCEPT / INTERSECT [ALL]."""
        check_args(node, _SETOP_ARGS, "UNION/EXCEPT/INTERSECT")
        left = self.query(node.this, parent, ctes)
        right = self.query(node.expression, parent, ctes)
        kind = node.key.upper()
        if len(left.outputs) != len(right.outputs):
            raise UsageError(
                f"{kind}: both queries must have the same number of columns"
                f" ({len(left.outputs)} and {len(right.outputs)})"
            )
        outputs = []
        for a, b in zip(left.outputs, right.outputs, strict=True):
            if a.value.is_geometry or b.value.is_geometry:
                if a.value.pg != b.value.pg:
                    raise UsageError(f"{kind}: column {a.name} mixes {a.value.pg} and {b.value.pg}")
                typ = a.value.pg
            else:
                typ = unify([a.value, b.value], f"{kind} column {a.name}")
            exact = typ == a.value.pg == b.value.pg and a.value.exact and b.value.exact
            # ASCII (char) only when both branches are
            meta = replace(a.value.meta, ascii=a.value.meta.ascii and b.value.meta.ascii)
            outputs.append(Output(a.name, a.value.with_(pg=typ, exact=exact, origin=None, shape=None,
                                                        predicate=False, constant=False, meta=meta)))
        new = type(node)(this=_branch(left.node), expression=_branch(right.node), distinct=node.args.get("distinct"))
        q = Query(node=new, outputs=outputs, leaves=[*left.leaves, *right.leaves])
        order = node.args.get("order")
        if order is not None:
            items = []
            for o in order.expressions:
                items.append(o.__class__(this=self._setop_order(o.this, outputs), desc=o.args.get("desc"),
                                         nulls_first=o.args.get("nulls_first")))
            new.set("order", exp.Order(expressions=items))
        self._limits(node, new)
        return q

    @staticmethod
    def _setop_order(item: exp.Expression, outputs: list[Output]) -> exp.Expression:
        if isinstance(item, exp.Literal) and not item.is_string:
            n = int_literal(item, "ORDER BY column number")
            if not 1 <= n <= len(outputs):
                raise UsageError(f"ORDER BY {n}: the query has {_columns(len(outputs))}")
            return exp.Literal.number(n)
        if isinstance(item, exp.Column) and not item.args.get("table"):
            for out in outputs:
                if same_name(out.name, item.name, bool(item.this.quoted)):
                    return exp.column(out.name, quoted=True)
        raise UsageError("ORDER BY of UNION/EXCEPT/INTERSECT must name an output column or give its number")

    def _limits(self, node: exp.Expression, new: exp.Expression) -> None:
        limit = node.args.get("limit")
        if limit is not None:
            if limit.args.get("offset") is not None or limit.args.get("expressions"):
                raise UsageError("LIMIT takes one number")
            new.set("limit", exp.Limit(expression=exp.Literal.number(_row_count(limit.expression, "TOP"))))
        offset = node.args.get("offset")
        if offset is not None:
            new.set("offset", exp.Offset(expression=exp.Literal.number(_row_count(offset.expression, "OFFSET"))))

    def select(self, node: exp.Select, parent: Scope | None, ctes: dict[str, Cte]) -> Query:
        """One SELECT ... FROM ... WHERE ... GROUP BY ... HAVING ... ORDER BY."""
        check_args(node, _SELECT_ARGS, "SELECT")
        if node.args.get("kind") or node.args.get("exclude") or node.args.get("operation_modifiers"):
            raise UsageError(f"this SELECT form is not ADQL{position(node)}")
        if not node.expressions:
            raise UsageError(f"the select list is empty{position(node)}: name the columns to return, or *")
        scope = Scope(parent=parent)
        new = exp.Select()
        from_ = node.args.get("from_")
        if from_ is None:
            raise UsageError("a SELECT needs a FROM clause (ADQL 2.1 section 2.2)")
        visible = self._from(from_, node.args.get("joins") or [], scope, ctes, new)
        where = node.args.get("where")
        if where is not None:
            new.set("where", exp.Where(this=self.condition(where.this, scope, ctes, "WHERE")))
        outputs = self._select_list(node.expressions, visible, scope, ctes)
        scope.outputs = [(o.name, o.value) for o in outputs]
        new.set("expressions", [
            exp.Alias(this=o.value.as_int(), alias=exp.to_identifier(o.name, quoted=True)) for o in outputs
        ])
        distinct = node.args.get("distinct")
        if distinct is not None:
            if distinct.args.get("on") is not None:
                raise UsageError("DISTINCT ON is not ADQL")
            new.set("distinct", exp.Distinct())
        group = node.args.get("group")
        if group is not None:
            check_args(group, {"expressions"}, "GROUP BY")
            new.set("group", exp.Group(expressions=[self._group_item(g, scope, ctes, len(outputs))
                                                    for g in group.expressions]))
        having = node.args.get("having")
        if having is not None:
            new.set("having", exp.Having(this=self.condition(having.this, scope, ctes, "HAVING")))
        order = node.args.get("order")
        if order is not None:
            items = [
                exp.Ordered(this=self._order_item(o.this, scope, ctes, len(outputs)), desc=o.args.get("desc"),
                            nulls_first=o.args.get("nulls_first"))
                for o in order.expressions
            ]
            new.set("order", exp.Order(expressions=items))
        self._limits(node, new)
        return Query(node=new, outputs=outputs, leaves=[(new, outputs)])

    def _group_item(self, item: exp.Expression, scope: Scope, ctes: dict[str, Cte], n: int) -> exp.Expression:
        if isinstance(item, exp.Literal) and not item.is_string:
            k = int_literal(item, "GROUP BY column number")
            if not 1 <= k <= n:
                raise UsageError(f"GROUP BY {k}: the query has {_columns(n)}")
            return exp.Literal.number(k)
        if isinstance(item, exp.Column) and not item.args.get("table") and isinstance(item.this, exp.Identifier):
            try:
                return self.expr(item, scope, ctes).node
            except UsageError:
                out = scope.output(item.name, bool(item.this.quoted))
                if out is None:
                    raise
                return exp.column(out[0], quoted=True)
        return self.expr(item, scope, ctes).as_int()

    def _order_item(self, item: exp.Expression, scope: Scope, ctes: dict[str, Cte], n: int) -> exp.Expression:
        if isinstance(item, exp.Literal) and not item.is_string:
            k = int_literal(item, "ORDER BY column number")
            if not 1 <= k <= n:
                raise UsageError(f"ORDER BY {k}: the query has {_columns(n)}")
            return exp.Literal.number(k)
        if isinstance(item, exp.Column) and not item.args.get("table") and isinstance(item.this, exp.Identifier):
            out = scope.output(item.name, bool(item.this.quoted))
            if out is not None:
                if out[1].is_geometry:
                    raise UsageError(f"ORDER BY {item.name}: geometries cannot be ordered")
                return exp.column(out[0], quoted=True)
        value = self.expr(item, scope, ctes)
        if value.is_geometry:
            raise UsageError(f"ORDER BY: geometries cannot be ordered{position(item)}")
        return value.as_int()

    def _select_list(
        self, items: list[exp.Expression], visible: list[Entry], scope: Scope, ctes: dict[str, Cte]
    ) -> list[Output]:
        raw: list[tuple[str, Value]] = []
        for item in items:
            if isinstance(item, exp.Star):
                raw += [(e.name, Scope.fresh(e)) for e in visible]
            elif isinstance(item, exp.Column) and isinstance(item.this, exp.Star):
                item = self.without_catalog(item)
                table_id = item.args.get("table")
                db = item.args.get("db")
                if not isinstance(table_id, exp.Identifier) or not isinstance(db, (exp.Identifier, type(None))):
                    raise UsageError(f"unsupported select item {snippet(item)}{position(item)}")
                source = scope.source(db.name if db else None, table_id.name, bool(db.quoted) if db else False,
                                      bool(table_id.quoted), item)
                raw += [(e.name, Scope.fresh(e)) for e in source.entries]
            elif isinstance(item, exp.Alias):
                value = self.expr(item.this, scope, ctes)
                raw.append((item.alias, value))
            else:
                value = self.expr(item, scope, ctes)
                raw.append((value.name or "expr", value))
        outputs = []
        seen: set[str] = set()
        last: dict[str, int] = {}  # the last suffix given to a name: no quadratic search for 10,000 repeats
        for name, value in raw:
            if value.pg == "boolean" and not value.predicate and not isinstance(value.node, exp.Column):
                raise UsageError(f"a condition cannot be a selected column ({name}); use CASE WHEN ... END")
            unique, n = name, last.get(name.lower(), 1)
            while unique.lower() in seen:
                n += 1
                unique = f"{name}_{n}"
            last[name.lower()] = n
            seen.add(unique.lower())
            outputs.append(Output(unique, value))
        return outputs


_BIGINT_MAX = 2**63 - 1


def _row_count(node: exp.Expression | None, what: str) -> int:
    """TOP or OFFSET: a non-negative integer PostgreSQL's LIMIT/OFFSET (bigint) can hold."""
    n = int_literal(node, what)
    if n > _BIGINT_MAX:
        raise UsageError(f"{what} must be at most {_BIGINT_MAX}")
    return n


def _branch(node: exp.Expression) -> exp.Expression:
    """A set-operation branch, parenthesised when it has its own ORDER BY, TOP or OFFSET."""
    if isinstance(node, exp.Select) and any(node.args.get(k) for k in ("order", "limit", "offset")):
        return exp.Subquery(this=node)
    return node
