"""The FROM clause: tables, CTEs, subqueries and joins, as sources of names in a :class:`Scope`.

Each FROM item becomes a :class:`~vo.adql.scope.Source` whose columns the rest of the query
can name, and a PostgreSQL FROM item with an explicit alias (the qualifier every column
reference is written with). Published tables come from the :class:`~vo.adql.catalog.Catalog`
only; NATURAL joins are written as the USING list they stand for.
"""

from __future__ import annotations

from functools import partial

from sqlglot import exp

from vo.adql.expressions import ExpressionTranslator, check_args, snippet
from vo.adql.parse import position
from vo.adql.scope import Cte, Entry, Output, Scope, Source, column_node, column_value, same_name
from vo.adql.values import Value, unify
from vo.errors import UsageError

__all__ = ["FromTranslator"]


class FromTranslator(ExpressionTranslator):
    """Translates FROM clauses (and, through its base, expressions)."""

    def _from(
        self, from_: exp.From, joins: list[exp.Join], scope: Scope, ctes: dict[str, Cte], new: exp.Select
    ) -> list[Entry]:
        node, visible = self._from_item(from_.this, scope, ctes)
        new.set("from_", exp.From(this=node))
        new_joins = []
        for join in joins:
            join_node, visible = self._join(join, visible, scope, ctes)
            new_joins.append(join_node)
        if new_joins:
            new.set("joins", new_joins)
        return visible

    def _join(
        self, join: exp.Join, left: list[Entry], scope: Scope, ctes: dict[str, Cte]
    ) -> tuple[exp.Join, list[Entry]]:
        check_args(join, {"this", "on", "using", "side", "kind", "method", "pivots"}, "JOIN")
        before = list(scope.sources)
        node, right = self._from_item(join.this, scope, ctes)
        right_ids = {id(s) for s in scope.sources if s not in before}
        side = (join.args.get("side") or "").upper() or None
        kind = (join.args.get("kind") or "").upper() or None
        natural = (join.args.get("method") or "").upper() == "NATURAL"
        if join.args.get("method") and not natural:
            raise UsageError(f"JOIN method {join.args['method']} is not ADQL")
        if kind not in (None, "INNER", "OUTER", "CROSS"):
            raise UsageError(f"{kind} JOIN is not ADQL")
        on = join.args.get("on")
        using = join.args.get("using") or []
        if kind == "CROSS" and (on is not None or using or natural or side):
            raise UsageError("CROSS JOIN takes no ON, USING or NATURAL")
        if side and not (on is not None or using or natural):
            raise UsageError(f"{side} JOIN needs ON, USING or NATURAL")
        new = exp.Join(this=node)
        if side:
            new.set("side", side)
        if kind in ("OUTER", "CROSS", "INNER"):
            new.set("kind", kind)
        if natural:
            names = self._natural(left, right)
            using = [exp.to_identifier(n, quoted=True) for n in names]
            if not using:
                if side:
                    new.set("on", exp.true())
                else:
                    new.set("kind", "CROSS")
                return new, left + right
        if on is not None:
            new.set("on", self.condition(on, scope, ctes, "ON"))
            return new, left + right
        if using:
            merged, visible = self._using(using, left, right, side, scope, before, right_ids)
            new.set("using", [exp.to_identifier(e.name, quoted=True) for e in merged])
            return new, visible
        return new, left + right  # comma or plain JOIN without condition: a cross product

    @staticmethod
    def _natural(left: list[Entry], right: list[Entry]) -> list[str]:
        right_names = {e.name.lower() for e in right}
        names: list[str] = []
        for e in left:
            if e.name.lower() in right_names:
                if e.name.lower() in {n.lower() for n in names}:
                    raise UsageError(f"NATURAL JOIN: column {e.name} appears twice on the left side")
                names.append(e.name)
        return names

    def _using(
        self, using: list[exp.Identifier], left: list[Entry], right: list[Entry], side: str | None,
        scope: Scope, left_sources: list[Source], right_ids: set[int],
    ) -> tuple[list[Entry], list[Entry]]:
        merged: list[Entry] = []
        names = set()
        for ident in using:
            name, quoted = ident.name, bool(ident.quoted)
            lhits = [e for e in left if same_name(e.name, name, quoted)]
            rhits = [e for e in right if same_name(e.name, name, quoted)]
            for hits, where in ((lhits, "left"), (rhits, "right")):
                if len(hits) != 1:
                    problem = "missing from" if not hits else "ambiguous on"
                    raise UsageError(f"USING ({name}): the column is {problem} the {where} side")
            lv, rv = lhits[0].value, rhits[0].value
            if side == "FULL":
                typ = unify([lv, rv], f"USING ({name})")
                base = lv.with_(pg=typ, exact=lv.exact and lv.pg == typ)
            elif side == "RIGHT":
                base = rv
            else:
                base = lv
            declared = lhits[0].name
            merged_column: exp.Expression = exp.column(declared, quoted=True)
            if base.origin is not None:  # a relative URL column stays absolute once merged
                merged_column = column_node(base.origin.column.decl, merged_column)
            value = base.with_(node=merged_column, origin=None)
            entry = Entry(declared, value)
            covered = {id(s) for s in left_sources if s.find(declared, True) or s.find(name, quoted)} | right_ids
            previous = scope.merged.get(declared.lower())
            if previous is not None:
                covered |= previous[1]
            scope.merged[declared.lower()] = (entry, covered)
            merged.append(entry)
            names.add(declared.lower())
        visible = merged + [e for e in left if e.name.lower() not in names] + [
            e for e in right if e.name.lower() not in names
        ]
        return merged, visible

    def _from_item(
        self, node: exp.Expression, scope: Scope, ctes: dict[str, Cte]
    ) -> tuple[exp.Expression, list[Entry]]:
        if isinstance(node, exp.Table):
            if node.args.get("joins"):
                raise UsageError("nested joins must be in parentheses")
            return self._table(node, scope, ctes)
        if isinstance(node, exp.Subquery):
            inner = node.this
            if isinstance(inner, exp.Table) and inner.args.get("joins") and not node.args.get("alias"):
                # (a JOIN b ON ...): a parenthesised join group
                joins = inner.args["joins"]
                base = inner.copy()
                base.set("joins", None)
                first, visible = self._table(base, scope, ctes)
                new_joins = []
                for j in joins:
                    jn, visible = self._join(j, visible, scope, ctes)
                    new_joins.append(jn)
                first.set("joins", new_joins)
                return exp.Subquery(this=first), visible
            return self._derived(node, scope, ctes)
        raise UsageError(f"{snippet(node)} cannot be used in FROM{position(node)}")

    def _table(self, node: exp.Table, scope: Scope, ctes: dict[str, Cte]) -> tuple[exp.Expression, list[Entry]]:
        """A published table or a WITH query named in FROM."""
        check_args(node, {"this", "db", "alias", "catalog"}, "FROM")
        ident = node.this
        db = node.args.get("db")
        catalog = node.args.get("catalog")
        if isinstance(ident, exp.Dot):
            raise UsageError(f"{snippet(node)}: a table name has at most three parts"
                             f" (catalog.schema.table){position(node)}")
        if not isinstance(ident, exp.Identifier) or any(
            part is not None and not isinstance(part, exp.Identifier) for part in (db, catalog)
        ):
            raise UsageError(f"{snippet(node)} cannot be used in FROM{position(node)}")
        if catalog is not None:
            # ADQL 2.1 section 2.1.2: catalog.schema.table; only this service's catalog has tables
            written = ".".join(p.name for p in (catalog, db, ident) if p is not None)
            self.catalog.check_catalog(catalog.name, bool(catalog.quoted), written, position(node))
        alias = node.args.get("alias")
        if alias is not None and alias.args.get("columns"):
            raise UsageError("a table alias cannot rename columns in ADQL")
        alias_name = alias.this.name if alias is not None else None
        name, quoted = ident.name, bool(ident.quoted)
        cte = ctes.get(name.lower()) if db is None else None
        if cte is not None and same_name(cte.name, name, quoted):
            ref = alias_name or cte.name
            entries = [Entry(o.name, self._outer_value(o, ref)) for o in cte.outputs]
            scope.add(Source(ref=ref, alias=ref, table=None, entries=entries, label=ref), node)
            return exp.Table(this=exp.to_identifier(cte.name, quoted=True),
                             alias=exp.TableAlias(this=exp.to_identifier(ref, quoted=True))), entries
        try:
            info = self.catalog.find(db.name if db else None, name, schema_quoted=bool(db and db.quoted),
                                     quoted=quoted)
        except UsageError as err:
            head, sep, hint = err.message.partition("; did you mean")
            raise UsageError(f"{head}{position(node)}{sep}{hint}") from None
        self.tables.setdefault(info.qualified_name, None)
        ref = alias_name or info.decl.name
        entries = [Entry(c.name, column_value(info, ref, c.name)) for c in info.columns]
        scope.add(Source(ref=ref, alias=alias_name, table=info, entries=entries, label=info.qualified_name,
                         schema_matches=partial(self.catalog.schema_matches, info)), node)
        return exp.Table(
            this=exp.to_identifier(info.sql_name, quoted=True), db=exp.to_identifier(info.sql_schema, quoted=True),
            alias=exp.TableAlias(this=exp.to_identifier(ref, quoted=True)),
        ), entries

    @staticmethod
    def _outer_value(out: Output, ref: str) -> Value:
        """How the enclosing query sees an output column of a subquery or CTE."""
        v = out.value
        pg = "integer" if v.predicate else v.pg
        return Value(node=exp.column(out.name, table=ref, quoted=True), pg=pg, frame=v.frame, meta=v.meta,
                     name=out.name, exact=v.exact or v.predicate)

    def _derived(self, node: exp.Subquery, scope: Scope, ctes: dict[str, Cte]) -> tuple[exp.Expression, list[Entry]]:
        check_args(node, {"this", "alias"}, "FROM")
        alias = node.args.get("alias")
        if alias is None or not isinstance(alias.this, exp.Identifier):
            raise UsageError(f"a subquery in FROM needs an alias (... ) AS name{position(node)}")
        if alias.args.get("columns"):
            raise UsageError("a subquery alias cannot rename columns in ADQL")
        q = self.query(node.this, scope.parent, ctes)
        ref = alias.this.name
        entries = [Entry(o.name, self._outer_value(o, ref)) for o in q.outputs]
        scope.add(Source(ref=ref, alias=ref, table=None, entries=entries, label=ref), node)
        return exp.Subquery(this=q.node, alias=exp.TableAlias(this=exp.to_identifier(ref, quoted=True))), entries
