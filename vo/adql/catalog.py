"""What ADQL may read: the published tables and columns, their SQL names and sky frames.

A :class:`Catalog` is built from the declarations in ``schemas/`` (plus tables added at run
time, such as ``TAP_UPLOAD`` tables) and a map of schema aliases. It is immutable: adding
a table returns a new catalog. Nothing here touches the database.

Internal columns (``published: false``: the pgSphere points behind the cone-search indexes)
are not readable names; ``POINT(lon, lat)`` over the columns one is generated from is
rewritten to it (:attr:`TableInfo.points`), and naming it gets a hint to write that.

Sky frames of geometry columns are a declared fact read from each column's UCD
(``pos.galactic.*`` is GALACTIC, ``pos.eq.*`` is ICRS). UCDs that say no frame (ObsCore's
``s_region`` is ``pos.outline;obs.field``) fall back to :data:`FRAME_BY_NAME`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import sqlglot
from sqlglot import exp

from schemas import Column, Table, published_tables
from vo.adql.parse import ADQL
from vo.errors import UsageError

__all__ = [
    "DEFAULT_SCHEMA_ALIASES",
    "SERVICE_CATALOGS",
    "FRAME_BY_NAME",
    "GALACTIC",
    "ICRS",
    "Catalog",
    "ColumnInfo",
    "TableInfo",
    "column_frame",
]

ICRS = "ICRS"
GALACTIC = "GALACTIC"

#: Schema names the ViaLactea client sends (vialactea-client.md section 2) and what they mean.
DEFAULT_SCHEMA_ALIASES: dict[str, str] = {
    "vlkb_compactsources": "compactsources",
    "vlkb_filaments": "filaments",
    "vlkb_datasets": "datasets",
    "vlkb_datasets_public": "datasets",
    "vlkb_radiocubes": "datasets",
}

#: Catalog names (``catalog.schema.table``, ADQL 2.1 section 2.1.2) that designate this service:
#: its short name, as a SQL catalog is the database one connects to. Any other catalog name
#: designates a table this service does not have.
SERVICE_CATALOGS: tuple[str, ...] = ("vlkb",)

#: Frames of geometry columns whose UCD does not name one.
FRAME_BY_NAME: dict[str, str] = {
    "pos": ICRS,
    "s_region": ICRS,
    "pos_gal": GALACTIC,
    "s_region_galactic": GALACTIC,
    "contour_poly": GALACTIC,
    "spine": GALACTIC,
}

#: Schemas that are never readable, whatever a catalog holds (named in the refusal).
_FORBIDDEN_SCHEMAS = {"pg_catalog", "information_schema", "vlkb", "pg_toast", "public", "pg_temp"}

_GEOMETRY = {"point", "circle", "polygon", "path"}


def column_frame(col: Column) -> str | None:
    """The sky frame of a geometry column: from its UCD, else :data:`FRAME_BY_NAME`, else None."""
    if col.type not in _GEOMETRY:
        return None
    ucd = (col.ucd or "").lower()
    if "pos.galactic" in ucd:
        return GALACTIC
    if "pos.eq" in ucd:
        return ICRS
    return FRAME_BY_NAME.get(col.name.lower())


@dataclass(frozen=True)
class ColumnInfo:
    """One readable column: its declaration and sky frame."""

    decl: Column
    frame: str | None

    @property
    def name(self) -> str:
        """The declared name, which is also the PostgreSQL name (db/ddl.py quotes it)."""
        return self.decl.name


@dataclass(frozen=True)
class TableInfo:
    """One readable table: declaration, PostgreSQL location, columns and point columns."""

    decl: Table
    sql_schema: str
    sql_name: str
    columns: tuple[ColumnInfo, ...]
    #: (lon column, lat column) in lower case -> generated spoint column fed by them (internal
    #: columns included: ``POINT(lon, lat)`` is rewritten to them, so their GiST index serves it)
    points: Mapping[tuple[str, str], ColumnInfo] = field(default_factory=dict)
    #: lower-case name of a polygon or path column -> its internal stored DALI forms (binary, text)
    #: (``db/sql/adql_functions.sql``): output reads them instead of formatting pgSphere values
    twins: Mapping[str, tuple[ColumnInfo, ColumnInfo]] = field(default_factory=dict)

    @property
    def qualified_name(self) -> str:
        """``schema.table`` as declared."""
        return self.decl.qualified_name

    @cached_property
    def _by_name(self) -> tuple[dict[str, ColumnInfo], dict[str, ColumnInfo]]:
        """(exact name, lower-cased name) -> the first such column: one lookup per reference,
        so ``SELECT *`` over a wide (uploaded) table costs linear, not quadratic, work."""
        exact: dict[str, ColumnInfo] = {}
        folded: dict[str, ColumnInfo] = {}
        for col in self.columns:
            exact.setdefault(col.name, col)
            folded.setdefault(col.name.lower(), col)
        return exact, folded

    def column(self, name: str, quoted: bool = False) -> ColumnInfo | None:
        """The column called ``name``: exactly if ``quoted``, else case-insensitively."""
        exact, folded = self._by_name
        return exact.get(name) if quoted else folded.get(name.lower())

    def internal_hint(self, name: str, qualifier: str | None = None) -> str | None:
        """What to write instead of the internal point column ``name``: ``POINT('ICRS', ra, dec)``."""
        prefix = f"{qualifier}." if qualifier else ""
        for (lon, lat), col in self.points.items():
            if not col.decl.published and col.name.lower() == name.lower():
                frame = f"'{col.frame}', " if col.frame else ""
                return f"POINT({frame}{prefix}{lon}, {prefix}{lat})"
        return None


def _point_sources(generated: str) -> tuple[str, str] | None:
    """``(lon, lat)`` column names when ``generated`` is ``spoint(radians(lon), radians(lat))``."""
    try:
        tree = sqlglot.parse_one(generated, read=ADQL)
    except Exception:  # a declaration we cannot read just gets no rewrite
        return None
    if not (isinstance(tree, exp.Anonymous) and tree.name.lower() == "spoint" and len(tree.expressions) == 2):
        return None
    names = []
    for arg in tree.expressions:
        if not (
            isinstance(arg, exp.Anonymous)
            and arg.name.lower() == "radians"
            and len(arg.expressions) == 1
            and isinstance(arg.expressions[0], exp.Column)
            and not arg.expressions[0].table
        ):
            return None
        names.append(arg.expressions[0].name.lower())
    return names[0], names[1]


_TWIN = re.compile(r"vlkb_dali_(bytes|text)\((vlkb_dali_polygon|vlkb_dali_path)\(([A-Za-z_][A-Za-z0-9_]*)\)\)")
_TWIN_OF = {"polygon": "vlkb_dali_polygon", "path": "vlkb_dali_path"}


def _twins(every: tuple[ColumnInfo, ...]) -> dict[str, tuple[ColumnInfo, ColumnInfo]]:
    """Published polygon/path column -> its (binary, text) stored DALI forms, when it has both,
    each computed by the function the translation would otherwise call on it."""
    forms: dict[tuple[str, str, str], ColumnInfo] = {}  # (source column, function, form) -> column
    for col in every:
        m = _TWIN.fullmatch((col.decl.generated or "").strip())
        if m and not col.decl.published:
            forms[(m.group(3).lower(), m.group(2), m.group(1))] = col
    out = {}
    for col in every:
        name, fn = col.name.lower(), _TWIN_OF.get(col.decl.type)
        if col.decl.published and fn and (name, fn, "bytes") in forms and (name, fn, "text") in forms:
            out[name] = (forms[(name, fn, "bytes")], forms[(name, fn, "text")])
    return out


def _table_info(table: Table, sql_schema: str | None = None, sql_name: str | None = None,
                default_frame: str | None = None) -> TableInfo:
    every = tuple(
        ColumnInfo(decl=c, frame=column_frame(c) or (default_frame if c.type in _GEOMETRY else None))
        for c in table.columns
    )
    cols = tuple(c for c in every if c.decl.published)
    points: dict[tuple[str, str], ColumnInfo] = {}
    for col in every:
        if col.decl.type == "point" and col.decl.generated:
            src = _point_sources(col.decl.generated)
            if src and all(any(c.name.lower() == s for c in cols) for s in src):
                points[src] = col
    return TableInfo(
        decl=table,
        sql_schema=sql_schema if sql_schema is not None else table.schema_name.lower(),
        sql_name=sql_name if sql_name is not None else table.name,
        columns=cols,
        points=points,
        twins=_twins(every),
    )


class Catalog:
    """The tables an ADQL query may read, by schema and name, and the accepted schema aliases.

    Parameters
    ----------
    tables
        Declarations of the readable tables (``schema_name`` filled in).
    aliases
        Extra schema names and the declared schema each stands for (case-insensitive).
    catalogs
        The catalog names that designate this service in three-part table names.
    """

    def __init__(
        self, tables: Iterable[Table] = (), *, aliases: Mapping[str, str] | None = None,
        catalogs: Iterable[str] = SERVICE_CATALOGS,
    ) -> None:
        self._tables: tuple[TableInfo, ...] = tuple(_table_info(t) for t in tables)
        self._aliases = {k.lower(): v for k, v in (aliases or {}).items()}
        self._catalogs = tuple(catalogs)

    @classmethod
    def published(cls, aliases: Mapping[str, str] | None = None) -> Catalog:
        """Every published table of ``schemas/``, with :data:`DEFAULT_SCHEMA_ALIASES` by default."""
        return cls(published_tables(), aliases=DEFAULT_SCHEMA_ALIASES if aliases is None else aliases)

    def with_table(self, table: Table, *, sql_schema: str | None = None, sql_name: str | None = None,
                   default_frame: str | None = None) -> Catalog:
        """A copy with one more table, e.g. ``TAP_UPLOAD.mine`` stored as ``pg_temp.upload_mine``.

        ``table.schema_name`` is its ADQL schema; ``sql_schema``/``sql_name`` say where
        PostgreSQL has it (default: the lower-cased schema and the declared name).
        ``default_frame`` is the frame of geometry columns whose UCD names none (DALI
        geometry values are ICRS unless said otherwise).
        """
        new = Catalog.__new__(Catalog)
        info = _table_info(table, sql_schema, sql_name, default_frame)
        new._tables = (*(t for t in self._tables if t.qualified_name.lower() != info.qualified_name.lower()), info)
        new._aliases = dict(self._aliases)
        new._catalogs = self._catalogs
        return new

    def with_aliases(self, aliases: Mapping[str, str]) -> Catalog:
        """A copy whose schema aliases also include ``aliases``."""
        new = Catalog.__new__(Catalog)
        new._tables = self._tables
        new._aliases = {**self._aliases, **{k.lower(): v for k, v in aliases.items()}}
        new._catalogs = self._catalogs
        return new

    @property
    def tables(self) -> tuple[TableInfo, ...]:
        """Every readable table."""
        return self._tables

    def check_catalog(self, catalog: str, quoted: bool, written: str, where: str = "") -> None:
        """UsageError unless ``catalog`` (of the three-part name ``written``) designates this service."""
        if any((c == catalog) if quoted else c.lower() == catalog.lower() for c in self._catalogs):
            return
        names = " or ".join(self._catalogs) if self._catalogs else "none"
        raise UsageError(
            f"table {written} does not exist{where}: {catalog} is not a catalog of this service"
            f" (its catalog name is {names}, which may be left out)"
        )

    def schema_matches(self, info: TableInfo, schema: str, quoted: bool) -> bool:
        """Whether the schema name ``schema`` (delimited or not) designates the schema of ``info``."""
        declared = info.decl.schema_name
        if (declared == schema) if quoted else declared.lower() == schema.lower():
            return True
        target = self._aliases.get(schema.lower())
        return target is not None and target.lower() == declared.lower()

    def find(self, schema: str | None, name: str, *, schema_quoted: bool = False, quoted: bool = False) -> TableInfo:
        """The table ``schema.name`` (or the only table called ``name``); UsageError if none."""
        if schema is not None and schema.lower() in _FORBIDDEN_SCHEMAS and schema.lower() not in self._aliases:
            raise UsageError(f"schema {schema} is not accessible through ADQL")

        def name_ok(info: TableInfo) -> bool:
            return (info.decl.name == name) if quoted else info.decl.name.lower() == name.lower()

        hits = [
            t for t in self._tables
            if name_ok(t) and (schema is None or self.schema_matches(t, schema, schema_quoted))
        ]
        if len(hits) == 1:
            return hits[0]
        written = f"{schema}.{name}" if schema else name
        if len(hits) > 1:
            names = ", ".join(sorted(t.qualified_name for t in hits))
            raise UsageError(f"table {written} is ambiguous: qualify it with its schema ({names})")
        known = {t.qualified_name.lower(): t.qualified_name for t in self._tables}
        if schema is not None:
            target = self._aliases.get(schema.lower(), schema)
            probe = f"{target}.{name}".lower()
        else:
            known.update({t.decl.name.lower(): t.qualified_name for t in self._tables})
            probe = name.lower()
        close = difflib.get_close_matches(probe, list(known), n=1, cutoff=0.7)
        hint = f"; did you mean {known[close[0]]}?" if close else ""
        raise UsageError(f"table {written} does not exist{hint}")
