"""Name resolution: which table or subquery a column reference of an ADQL query reads.

A :class:`Scope` holds the FROM items of one SELECT (:class:`Source`), the columns merged
by ``USING``/``NATURAL`` joins, the select-list outputs (for ORDER BY and GROUP BY names)
and the enclosing scope (correlated subqueries). Resolution follows SQL: unqualified names
are case-insensitive unless delimited, the innermost scope wins, and a name found in two
FROM items is ambiguous. Every reference is written qualified in the generated SQL, with
the qualifier (:attr:`Source.ref`) the translator chose for its FROM item.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlglot import exp

from schemas import Column
from vo.adql.catalog import TableInfo
from vo.adql.parse import position
from vo.adql.values import Meta, Origin, Value, func
from vo.errors import UsageError

__all__ = [
    "PUBLIC_URL", "Cte", "Entry", "Output", "Query", "Scope", "Source", "column_node", "column_value", "same_name",
]


def same_name(declared: str, written: str, quoted: bool) -> bool:
    """ADQL identifier equality: exact when delimited, case-insensitive otherwise."""
    return declared == written if quoted else declared.lower() == written.lower()


@dataclass
class Output:
    """One output column of a query: its (unique) name and value."""

    name: str
    value: Value


@dataclass
class Query:
    """A translated query: its PostgreSQL AST, output columns and the SELECT leaves producing them."""

    node: exp.Expression
    outputs: list[Output]
    #: the SELECTs whose select lists make the output columns (one, or the branches of a UNION)
    leaves: list[tuple[exp.Select, list[Output]]] = field(default_factory=list)


@dataclass(frozen=True)
class Cte:
    """A WITH query, by the name it is given: the columns it outputs."""

    name: str
    outputs: list[Output]


@dataclass(frozen=True)
class Entry:
    """One column a FROM item (or a join of them) exposes: its name and its value template."""

    name: str
    value: Value


@dataclass
class Source:
    """One table, CTE or subquery of a FROM clause."""

    #: the qualifier written in the generated SQL (its alias, or the table name)
    ref: str
    #: the name it must be qualified with in ADQL: its alias, a CTE's or a subquery's name;
    #: None for an unaliased table (qualified by its name, optionally with its schema)
    alias: str | None
    table: TableInfo | None
    entries: list[Entry]
    #: display name for messages (compactsources.band70um, or the alias of a subquery)
    label: str
    #: for an unaliased table: whether a written schema name (and its quoting) designates its schema
    schema_matches: Callable[[str, bool], bool] | None = None

    def qualifies(self, schema: str | None, name: str, schema_quoted: bool, quoted: bool) -> bool:
        """Whether ``[schema.]name`` designates this source."""
        if self.alias is not None:
            return schema is None and same_name(self.alias, name, quoted)
        if self.table is None or not same_name(self.table.decl.name, name, quoted):
            return False
        return schema is None or (self.schema_matches is not None and self.schema_matches(schema, schema_quoted))

    def find(self, name: str, quoted: bool) -> Entry | None:
        """The entry called ``name``, if any."""
        for entry in self.entries:
            if same_name(entry.name, name, quoted):
                return entry
        return None


#: The SQL function that makes a stored relative reference absolute with the session's public
#: base URL (``db/sql/adql_functions.sql``; the base is set by ``db.session.setup_statement``).
PUBLIC_URL = "vlkb_public_url"


def column_node(decl: Column, column: exp.Expression) -> exp.Expression:
    """What a reference to the declared column ``decl`` reads: the column itself, or for a column
    of relative URLs (``url: relative``) the absolute URL, so SELECT, WHERE and ORDER BY all see
    what a client gets."""
    return func(PUBLIC_URL, column) if decl.url == "relative" else column


def column_value(table: TableInfo, ref: str, col_name: str) -> Value:
    """The value of a reference to a declared column of a base table."""
    info = table.column(col_name, quoted=True)
    assert info is not None
    decl = info.decl
    meta = Meta(unit=decl.unit, ucd=decl.ucd, utype=decl.utype, description=decl.description,
                arraysize=decl.arraysize, ascii=decl.type == "char")
    return Value(
        node=column_node(decl, exp.column(decl.name, table=ref, quoted=True)), pg=decl.info.pg, frame=info.frame,
        meta=meta,
        name=decl.name, origin=Origin(table=table, column=info, qualifier=ref), exact=True,
    )


@dataclass
class Scope:
    """The names visible in one SELECT."""

    parent: Scope | None = None
    sources: list[Source] = field(default_factory=list)
    #: USING/NATURAL columns: lower-case name -> (merged value, ids of the sources it covers)
    merged: dict[str, tuple[Entry, set[int]]] = field(default_factory=dict)
    #: select-list outputs: (output name, value)
    outputs: list[tuple[str, Value]] = field(default_factory=list)

    def add(self, source: Source, node: exp.Expression | None) -> None:
        """Add a FROM item; UsageError if its qualifier is already used."""
        for other in self.sources:
            if other.ref.lower() == source.ref.lower():
                raise UsageError(
                    f"table name {source.ref} is used twice in one FROM clause{position(node)}; give each an alias"
                )
        self.sources.append(source)

    def source(self, schema: str | None, name: str, schema_quoted: bool, quoted: bool, node: exp.Expression) -> Source:
        """The FROM item ``[schema.]name`` designates, here or in an enclosing scope."""
        scope: Scope | None = self
        while scope is not None:
            hits = [s for s in scope.sources if s.qualifies(schema, name, schema_quoted, quoted)]
            if len(hits) > 1:
                raise UsageError(f"table reference {name} is ambiguous{position(node)}")
            if hits:
                return hits[0]
            scope = scope.parent
        written = f"{schema}.{name}" if schema else name
        known = [s.alias or s.ref for s in self.sources]
        close = difflib.get_close_matches(name.lower(), [k.lower() for k in known], n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise UsageError(f"{written} is not a table of the FROM clause{position(node)}{hint}")

    def resolve(self, node: exp.Column) -> Value:
        """The value a column reference stands for; UsageError if unknown or ambiguous."""
        ident = node.this
        name, quoted = ident.name, bool(ident.quoted)
        table_id = node.args.get("table")
        db = node.args.get("db")
        if node.args.get("catalog") is not None:
            raise UsageError(f"{node.sql()}: too many qualifiers{position(node)}")
        for part in (table_id, db):
            if part is not None and not isinstance(part, exp.Identifier):
                raise UsageError(f"unsupported column reference {node.sql()}{position(node)}")
        if table_id is not None:
            source = self.source(
                db.name if db else None, table_id.name, bool(db.quoted) if db else False,
                bool(table_id.quoted), node,
            )
            entry = source.find(name, quoted)
            if entry is None:
                raise UsageError(self._unknown(name, [source], node, table_id.name))
            return self.fresh(entry)
        scope: Scope | None = self
        while scope is not None:
            found = scope._unqualified(name, quoted, node)
            if found is not None:
                return found
            scope = scope.parent
        raise UsageError(self._unknown(name, self.sources, node))

    def _unqualified(self, name: str, quoted: bool, node: exp.Expression) -> Value | None:
        merged = self.merged.get(name.lower())
        covered: set[int] = set()
        if merged is not None and (not quoted or merged[0].name == name):
            covered = merged[1]
        hits = [
            (s, e) for s in self.sources if id(s) not in covered for e in [s.find(name, quoted)] if e is not None
        ]
        if covered:
            if hits:
                raise UsageError(f"column {name} is ambiguous{position(node)}: qualify it with a table name")
            return self.fresh(merged[0])  # type: ignore[index]
        if len(hits) > 1:
            tables = ", ".join(s.label for s, _ in hits)
            raise UsageError(f"column {name} is ambiguous{position(node)}: it is in {tables}; qualify it")
        if hits:
            return self.fresh(hits[0][1])
        return None

    @staticmethod
    def fresh(entry: Entry) -> Value:
        """A copy of an entry's value with its own node (a node has one parent)."""
        return entry.value.with_(node=entry.value.node.copy())

    @staticmethod
    def _unknown(name: str, sources: list[Source], node: exp.Expression, qualifier: str | None = None) -> str:
        labels = ", ".join(s.label for s in sources) or "the FROM clause"
        for s in sources:
            ref = qualifier or (s.alias or s.ref if len(sources) > 1 else None)
            hint = s.table.internal_hint(name, ref) if s.table is not None else None
            if hint is not None:
                # the point columns behind the spatial indexes are internal (docs/tap.md)
                return (f"column {name} does not exist in {labels}{position(node)}: positions are published as"
                        f" longitude and latitude columns; write {hint}, which uses the same spatial index")
        names = {e.name.lower(): e.name for s in sources for e in s.entries}
        close = difflib.get_close_matches(name.lower(), list(names), n=1, cutoff=0.6)
        hint = f"; did you mean {names[close[0]]}?" if close else ""
        return f"column {name} does not exist in {labels}{position(node)}{hint}"

    def output(self, name: str, quoted: bool) -> tuple[str, Value] | None:
        """The select-list output called ``name`` (for ORDER BY / GROUP BY), if any."""
        for out_name, value in self.outputs:
            if same_name(out_name, name, quoted):
                return out_name, value
        return None
