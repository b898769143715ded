"""The ADQL 2.1 dialect of sqlglot, and the PostgreSQL + pgSphere dialect the translation is written in.

``parse`` turns ADQL text into one sqlglot AST (refusing a second statement) and
``generate`` writes a translated AST as PostgreSQL. Everything between (allow-lists,
geometry, types) lives in the other modules of this package; nothing here knows tables.

The ADQL dialect is sqlglot's ANSI base dialect with ``TOP`` and with an empty function
table, so every function call parses to ``exp.Anonymous(name, args)`` and the translator
decides alone what a name means (``LOG`` is the natural logarithm in ADQL, base 10 in
PostgreSQL, for example). Strings follow SQL-92: only ``''`` escapes a quote.
"""

from __future__ import annotations

import re
from typing import ClassVar

from sqlglot import exp, parser, tokens
from sqlglot.dialects.dialect import Dialect
from sqlglot.dialects.postgres import Postgres
from sqlglot.errors import ParseError, SqlglotError, TokenError
from sqlglot.tokens import TokenType

from vo.errors import UsageError

__all__ = ["ADQL", "PgSphere", "SphereOp", "generate", "parse", "position"]


class ADQL(Dialect):
    """ADQL 2.1 (IVOA Recommendation 2023-12-15) as a sqlglot dialect."""

    # ORDER BY keeps PostgreSQL's own NULL ordering: no NULLS FIRST/LAST is added.
    NULL_ORDERING = "nulls_are_large"

    class Tokenizer(tokens.Tokenizer):
        KEYWORDS = {**tokens.Tokenizer.KEYWORDS, "TOP": TokenType.TOP}

    class Parser(parser.Parser):
        # Every call is exp.Anonymous: the translator owns the meaning of function names.
        # Only CAST keeps its own syntax; SQL forms ADQL lacks (EXTRACT, SUBSTRING ... FROM,
        # TRIM, POSITION, CURRENT_USER without parentheses ...) are then syntax errors or
        # unknown names.
        FUNCTIONS: ClassVar[dict] = {}
        FUNCTION_PARSERS = {"CAST": parser.Parser.FUNCTION_PARSERS["CAST"]}
        NO_PAREN_FUNCTIONS: ClassVar[dict] = {}

        def _warn_unsupported(self) -> None:
            # sqlglot logs a warning before parsing unknown statements as commands; those are
            # refused anyway ("only SELECT"), and user input must not fill the service's log.
            return


class SphereOp(exp.Expression, exp.Binary):
    """A pgSphere operator (``<@``, ``&&``, ``<->``, ``+``, ``-`` with strans), always parenthesised."""

    arg_types = {"this": True, "expression": True, "op": True}


class PgSphere(Postgres):
    """PostgreSQL with pgSphere operators; every identifier quoted, strings written safely."""

    # recent sqlglot 30 releases declare ``Postgres.Generator = PostgresGenerator`` (a class attribute, which
    # mypy refuses as a base); importing PostgresGenerator instead would break sqlglot 30.0, which
    # pyproject allows and which has no sqlglot.generators package.
    class Generator(Postgres.Generator):  # type: ignore[valid-type,misc]
        TRANSFORMS = {**Postgres.Generator.TRANSFORMS, SphereOp: lambda self, e: self.sphere_op(e)}

        def sphere_op(self, expression: SphereOp) -> str:
            """``(a <op> b)``: the pgSphere operators have no sqlglot node of their own."""
            op = expression.args["op"]
            return f"({self.sql(expression, 'this')} {op} {self.sql(expression, 'expression')})"

        def identifier_sql(self, expression: exp.Identifier) -> str:
            # Always quoted: ADQL reserved words (size, distance, ...) and mixed-case declared
            # names are then plain identifiers to PostgreSQL.
            return '"' + expression.name.replace('"', '""') + '"'

        def literal_sql(self, expression: exp.Literal) -> str:
            if not expression.is_string:
                return str(expression.this)
            text = str(expression.this).replace("'", "''")
            if "\\" in text:
                # E'' makes the backslash meaning independent of standard_conforming_strings.
                return "E'" + text.replace("\\", "\\\\") + "'"
            return f"'{text}'"


def position(node: exp.Expression | None) -> str:
    """`` at line L, column C`` for a parsed node that knows where it was, else an empty string."""
    if node is None:
        return ""
    # sqlglot records where identifiers, literals and calls were parsed; a compound node
    # (a qualified column, a join) is located by its first identifier.
    meta = node.meta
    if "line" not in meta:
        ident = node.find(exp.Identifier)
        meta = ident.meta if ident is not None else {}
    if "line" not in meta or "col" not in meta:
        return ""
    # 'col' is where the token ends; report where it starts.
    col = meta["col"] - (meta.get("end", 0) - meta.get("start", 0))
    return f" (line {meta['line']}, column {col})"


#: Characters no ADQL text contains (ADQL 2.1 section 2.1.1: SQL characters and whitespace):
#: C0 controls but tab, line feed and carriage return, DEL, C1 controls, and lone surrogates
#: (a string Python holds but that is not Unicode text, so no database could receive it).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def parse(query: str) -> exp.Expression:
    """The AST of one ADQL statement; UsageError on a syntax error or a second statement."""
    if not query or not query.strip():
        raise UsageError("the query is empty")
    if "\x00" in query:
        raise UsageError("the query contains a NUL character")
    bad = _CONTROL.search(query)
    if bad is not None:
        raise UsageError(f"the query contains the character U+{ord(bad.group()):04X} (at offset {bad.start()}),"
                         " which ADQL does not allow")
    try:
        # a lone ';' or a comment after the last ';' parses to None or Semicolon: not a statement.
        # sqlglot types the result as exp.Expr, the base of its mixins (Binary, Func, Query ...);
        # every node it builds is an exp.Expression, so the isinstance only narrows the type.
        statements = [s for s in ADQL().parse(query)
                      if isinstance(s, exp.Expression) and not isinstance(s, exp.Semicolon)]
    except ParseError as err:
        first = err.errors[0] if err.errors else {}
        where = (
            f" at line {first['line']}, column {first['col']}" if first.get("line") is not None else ""
        )
        near = (first.get("highlight") or "").strip()
        near = f" near '{near}'" if near else ""
        desc = _clean(first.get("description") or "syntax error")
        raise UsageError(f"ADQL syntax error{where}{near}: {desc}") from None
    except TokenError as err:
        raise UsageError(f"ADQL syntax error: {_token_message(err)}") from None
    except SqlglotError as err:  # any other sqlglot failure is still the query's fault
        raise UsageError(f"ADQL syntax error: {err}") from None
    except RecursionError:
        raise UsageError("the query is nested too deeply") from None
    if not statements:
        raise UsageError("the query is empty")
    if len(statements) > 1:
        raise UsageError("only one statement is allowed: remove everything after the ';'")
    return statements[0]


def _clean(description: str) -> str:
    """sqlglot's parse error text without its internals (token reprs, class paths)."""
    description = re.sub(r"<Token token_type: TokenType\.\w+, text: (.*?), line: .*?>", r"'\1'", description)
    description = re.sub(r"Required keyword: '(\w+)' missing for <class '[\w.]*\.(\w+)'>",
                         lambda m: f"incomplete {m.group(2).upper()}", description)
    return description.replace("'SENTINEL'", "the end of the query")


def _token_message(err: TokenError) -> str:
    text = str(err)
    if "Missing" in text or "string" in text.lower() or "'" in text:
        return "unterminated string or delimited identifier"
    return text


def generate(tree: exp.Expression) -> str:
    """PostgreSQL text of a translated AST (comments dropped: user text never reaches the SQL)."""
    return tree.sql(dialect=PgSphere, comments=False)
