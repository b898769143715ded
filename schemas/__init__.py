"""Declarations of the published tables, and the one loader that reads them.

Each ``<schema>.yaml`` file in this package declares one published schema: its tables,
their columns (type, unit, UCD, utype, description, flags) and indexes. Everything that
describes a published table is derived from these files: the DDL (``db/ddl.py``), the rows
of ``TAP_SCHEMA`` (``db/tap_schema.py``), the VOSI tableset and the VOTable FIELDs.
This module holds data models and the loader only: no SQL, no HTTP.

Column ``type`` is one word of a small vocabulary (see :data:`TYPES`) mapping to a
PostgreSQL type and to the VOTable ``datatype``/``arraysize``/``xtype`` that TAP 1.1
(section 4.3) asks ``TAP_SCHEMA.columns`` to carry.
"""

from __future__ import annotations

import os
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "TYPES",
    "Column",
    "ForeignKey",
    "Index",
    "SchemaDecl",
    "Table",
    "TypeInfo",
    "load_schemas",
    "published_tables",
    "find_table",
    "schemas_markdown",
]


class TypeInfo(BaseModel):
    """How one declared column type is stored in PostgreSQL and published in VOTable."""

    model_config = ConfigDict(frozen=True)
    pg: str
    datatype: str
    arraysize: str | None = None
    xtype: str | None = None


#: The declared type vocabulary. Geometry types are pgSphere types published with the DALI
#: xtypes (DALI 1.1 section 3.3); ``path`` (an open pgSphere line) has no DALI xtype and is
#: published as a DALI-style list of lon/lat pairs in degrees. Text is ``unicodeChar``: VOTable
#: ``char`` is ASCII only, and the result writers must carry any text (vo/votable/columns.py).
TYPES: dict[str, TypeInfo] = {
    "short": TypeInfo(pg="smallint", datatype="short"),
    "int": TypeInfo(pg="integer", datatype="int"),
    "long": TypeInfo(pg="bigint", datatype="long"),
    "float": TypeInfo(pg="real", datatype="float"),
    "double": TypeInfo(pg="double precision", datatype="double"),
    "boolean": TypeInfo(pg="boolean", datatype="boolean"),
    "text": TypeInfo(pg="text", datatype="unicodeChar", arraysize="*"),
    # ASCII-only text, kept as VOTable char (uploaded char columns whose values are all ASCII)
    "char": TypeInfo(pg="text", datatype="char", arraysize="*"),
    "timestamp": TypeInfo(pg="timestamp", datatype="char", arraysize="*", xtype="timestamp"),
    "point": TypeInfo(pg="spoint", datatype="double", arraysize="2", xtype="point"),
    "circle": TypeInfo(pg="scircle", datatype="double", arraysize="3", xtype="circle"),
    "polygon": TypeInfo(pg="spoly", datatype="double", arraysize="*", xtype="polygon"),
    "path": TypeInfo(pg="spath", datatype="double", arraysize="*"),
    # internal only: the stored VOTable binary form of a polygon or path (db/sql/adql_functions.sql)
    "bytes": TypeInfo(pg="bytea", datatype="unsignedByte", arraysize="*"),
}


class Column(BaseModel):
    """One published column."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    type: Literal[
        "short", "int", "long", "float", "double", "boolean", "text", "char", "timestamp",
        "point", "circle", "polygon", "path", "bytes",
    ]
    description: str
    unit: str | None = None
    ucd: str | None = None
    utype: str | None = None
    principal: bool = False
    indexed: bool = False
    std: bool = False
    nullable: bool = True
    #: SQL expression for a stored generated column (e.g. the pgSphere point from ra/dec).
    generated: str | None = None
    #: Fixed length for ``text`` columns whose values all have the same length (VOTable arraysize).
    arraysize: str | None = None
    #: False for an internal column: created and indexed like any other, but absent from
    #: TAP_SCHEMA, VOSI, ``SELECT *`` and the ADQL names (e.g. the pgSphere points behind the
    #: cone-search indexes, reached through ``POINT(ra, dec)``: see :meth:`Table.indexed_columns`).
    published: bool = True
    #: ``relative``: the column stores a reference relative to the service's public base URL
    #: (``datalink/links?ID=...``), made absolute when answering (``vlkb_public_url`` in
    #: ``db/sql/adql_functions.sql``), so moving the service to another host name needs no re-ingest.
    url: Literal["relative"] | None = None

    @property
    def info(self) -> TypeInfo:
        """The PostgreSQL and VOTable types of this column."""
        return TYPES[self.type]

    @property
    def adql_name(self) -> str:
        """The name as TAP_SCHEMA and VOSI publish it: delimited when it is an ADQL reserved word."""
        from schemas.reserved import is_reserved

        return f'"{self.name}"' if is_reserved(self.name) else self.name

    @property
    def votable_arraysize(self) -> str | None:
        """The VOTable arraysize: a declared override, else the type's own."""
        return self.arraysize or self.info.arraysize


class Index(BaseModel):
    """An index: ``gist`` for pgSphere geometry, ``btree`` otherwise."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    columns: list[str]
    method: Literal["btree", "gist"] = "btree"
    unique: bool = False


class ForeignKey(BaseModel):
    """A foreign key, published in ``TAP_SCHEMA.keys`` and ``key_columns``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    target: str = Field(description="qualified name of the target table")
    columns: list[tuple[str, str]] = Field(description="(from_column, target_column) pairs")
    description: str | None = None
    #: whether the DDL enforces it; published either way.
    enforced: bool = False


class Table(BaseModel):
    """One published table or view."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    description: str
    utype: str | None = None
    type: Literal["table", "view"] = "table"
    columns: list[Column]
    primary_key: list[str] = []
    indexes: list[Index] = []
    foreign_keys: list[ForeignKey] = []
    #: the column naming the survey each row belongs to: rows of a survey the caller may not
    #: read are invisible to ADQL (PostgreSQL row-level security, ``db/ddl.py``).
    access_column: str | None = None
    #: filled by the loader: the schema this table belongs to.
    schema_name: str = ""

    @property
    def qualified_name(self) -> str:
        """``schema.table``, as TAP_SCHEMA and ADQL name it."""
        return f"{self.schema_name}.{self.name}"

    @property
    def published_columns(self) -> list[Column]:
        """The columns TAP_SCHEMA, VOSI, ``SELECT *`` and ADQL know: all but the internal ones."""
        return [c for c in self.columns if c.published]

    def indexed_columns(self) -> set[str]:
        """Lower-case names of the published columns an index serves, as TAP_SCHEMA and VOSI flag them.

        An index counts for the first column it is on, and the primary key for its first column.
        An index on an internal generated column counts for the published columns it is computed
        from: the GiST index on ``spoint(radians(ra), radians(dec))`` serves ADQL conditions on
        ``POINT(ra, dec)``, which the translator rewrites to that column.
        """
        first = {idx.columns[0].lower() for idx in self.indexes if idx.columns}
        if self.primary_key:
            first.add(self.primary_key[0].lower())
        out: set[str] = set()
        for col in self.columns:
            if col.name.lower() not in first:
                continue
            if col.published:
                out.add(col.name.lower())
            elif col.generated:
                words = {w.lower() for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", col.generated)}
                out |= {c.name.lower() for c in self.published_columns if c.name.lower() in words}
        return out

    def column(self, name: str) -> Column:
        """The column called ``name`` (case-insensitive); KeyError if none."""
        for col in self.columns:
            if col.name.lower() == name.lower():
                return col
        raise KeyError(f"{name} is not a column of {self.qualified_name}")

    @model_validator(mode="after")
    def _check_names(self) -> Table:
        names = [c.name.lower() for c in self.columns]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"table {self.name}: duplicate columns {sorted(dupes)}")
        for idx in self.indexes:
            missing = [c for c in idx.columns if c.lower() not in names]
            if missing:
                raise ValueError(f"table {self.name}: index on unknown columns {missing}")
        for c in self.primary_key:
            if c.lower() not in names:
                raise ValueError(f"table {self.name}: primary key on unknown column {c}")
        published = {c.name.lower() for c in self.columns if c.published}
        for c in self.primary_key:
            if c.lower() not in published:
                raise ValueError(f"table {self.name}: primary key on internal column {c}")
        if self.access_column is not None and self.access_column.lower() not in names:
            raise ValueError(f"table {self.name}: access_column {self.access_column} is not a column")
        return self


class SchemaDecl(BaseModel):
    """One published schema, as declared in ``schemas/<name>.yaml``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_: str = Field(alias="schema")
    description: str
    utype: str | None = None
    #: order of this schema in TAP_SCHEMA.schemas (schema_index)
    index: int = 0
    tables: list[Table]

    @property
    def name(self) -> str:
        """The schema name."""
        return self.schema_


#: libyaml's parser where PyYAML has it (the same documents, 8x faster: 0.02 s against 0.14 s for
#: vlkb's declarations, which every worker process reads as it starts)
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@cache
def load_schemas() -> tuple[SchemaDecl, ...]:
    """All published schema declarations (the package's, then ``VLKB_SCHEMAS_DIR``'s), ordered by ``index``.

    Cached: the files do not change while the process runs (a new table needs a restart).
    """
    decls = []
    entries = [e for e in resources.files(__package__).iterdir() if e.name.endswith(".yaml")]
    # An operator's own tables (VLKB_SCHEMAS_DIR, see app/settings.py): read here rather than
    # passed in, because every process (service, CLI, workers) must see the same declarations.
    extra = os.environ.get("VLKB_SCHEMAS_DIR")
    if extra:
        entries += sorted(p for p in Path(extra).expanduser().glob("*.yaml"))
    for entry in entries:
        decl = SchemaDecl.model_validate(yaml.load(entry.read_text(encoding="utf-8"), Loader=_YAML_LOADER))
        tables = [t.model_copy(update={"schema_name": decl.name}) for t in decl.tables]
        decls.append(decl.model_copy(update={"tables": tables}))
    names = [d.name.lower() for d in decls]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise ValueError(f"schemas declared twice: {clash} (VLKB_SCHEMAS_DIR repeats a schema of vlkb's)")
    return tuple(sorted(decls, key=lambda d: (d.index, d.name)))


def published_tables() -> list[Table]:
    """Every published table of every schema, in declaration order."""
    return [t for s in load_schemas() for t in s.tables]


def find_table(qualified_name: str) -> Table:
    """The table called ``schema.table`` (case-insensitive); KeyError if none."""
    for t in published_tables():
        if t.qualified_name.lower() == qualified_name.lower():
            return t
    raise KeyError(qualified_name)


def schemas_markdown() -> str:
    """``docs/data-model.md``: every published schema, table and column, from the declarations."""
    out = [
        "# Published tables",
        "",
        "Generated from `schemas/*.yaml` by `vlkb schema-doc`; a test keeps it current. The same",
        "declarations fill `TAP_SCHEMA` and `/tap/tables`. Geometry columns are pgSphere values",
        "published with DALI xtypes (polygon); `s_region` is ICRS, `s_region_galactic`, `contour_poly`",
        "and `spine` Galactic. Positions are published as plain longitude/latitude columns; cone",
        "searches on them (`CONTAINS(POINT('ICRS', ra, dec), CIRCLE(...))`, or with",
        "`POINT('GALACTIC', glon, glat)`) use spatial indexes on internal point columns, which are",
        "not listed here. URL columns (`access_url`, `preview`) are made from the service's public",
        "base URL when a query is answered.",
        "",
    ]
    for decl in load_schemas():
        out += [f"## Schema `{decl.name}`", "", decl.description.strip(), ""]
        for t in decl.tables:
            out += [f"### `{t.qualified_name}`", "", t.description.strip(), "",
                    "| column | type | unit | UCD | description |", "| --- | --- | --- | --- | --- |"]
            for c in t.published_columns:
                desc = " ".join(c.description.split()).replace("|", "\\|")
                out.append(f"| `{c.adql_name}` | {c.type} | {c.unit or ''} | {c.ucd or ''} | {desc} |")
            out.append("")
    return "\n".join(out)
