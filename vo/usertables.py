"""Persistent user tables (issue 17 part 2; CADC YouCat's REST shape): names, formats, quotas, access.

An authenticated user keeps tables in their own schema ``user_<name>`` (:func:`schema_of`), made
from a VOTable, CSV/TSV or Parquet body (or a VOTable of FIELDs only: declared columns, no rows),
appends rows, adds indexes (a pgSphere GiST index over ``POINT(ra, dec)`` for a pair of
coordinate columns), shares them read-only with groups, and drops them. ADQL reads them like any
table (:func:`user_catalog`), joined with the knowledge base.

Who may read a user table is decided in one place, the row-level security of
``db/sql/access.sql`` (owner, or a member of a group it is shared with), through the caller's
session of :mod:`vo.caller`: the tables a caller may read are those the registry shows in that
session (:func:`readable`). A table the caller may not read and a table that does not exist are
the same answer (404, "does not exist"). Only writes check ownership here (the owner alone may
change a table; a reader who tries gets 403).

Reading the bodies reuses what exists: VOTables go through the guarded reader of TAP UPLOAD
(:func:`vo.upload.read_upload`: no entities, no external streams; FIELD units, UCDs and xtypes
kept), CSV/TSV and Parquet through the catalogue-ingest reader and converter
(:mod:`vo.ingest.catalog_files`, :func:`vo.ingest.catalog.prepare`, binary COPY), with the
column types inferred from what pyarrow reads.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg_pool import AsyncConnectionPool

from db import usertables as store
from db.ddl import pg_schema
from db.usertables import UserTable
from schemas import Column, Index, SchemaDecl, Table, load_schemas
from schemas.reserved import is_reserved
from vo.adql.catalog import DEFAULT_SCHEMA_ALIASES, ICRS, Catalog
from vo.caller import Caller, session, session_blocking
from vo.dali import DaliParams
from vo.errors import AuthError, NotFoundError, TooLargeError, UsageError
from vo.ingest.catalog import CatalogError, ColumnMap, fold, prepare
from vo.ingest.catalog_files import CatalogFileError, SourceTable, read_source
from vo.upload import UploadRef, read_upload

__all__ = [
    "FORMATS", "PREFIX", "Limits", "TableUpdate", "append", "body_format", "check_new_blocking", "create",
    "create_blocking", "create_from_query", "create_options", "describe", "drop", "mentions_user_tables",
    "parse_name", "read_groups", "readable", "readable_blocking", "schema_of", "tableset_schemas",
    "update_blocking", "user_catalog",
]

#: every user schema's name starts with this
PREFIX = "user_"
#: body media types -> format (``;`` parameters ignored); ``FORMAT=`` may name the format instead
FORMATS: dict[str, str] = {
    "application/x-votable+xml": "votable", "text/xml": "votable", "application/xml": "votable",
    "text/csv": "csv", "text/tab-separated-values": "tsv",
    "application/vnd.apache.parquet": "parquet", "application/x-parquet": "parquet",
    "application/parquet": "parquet", "application/fits": "fits",
}
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_CLEAN_USER = re.compile(r"[a-z][a-z0-9_]{0,39}\Z")
#: PostgreSQL truncates longer identifiers
_MAX_NAME = 63
#: problems listed in a refusal of bad rows
_SHOWN = 10
#: (folded column name) -> UCD, so the usual coordinate columns of a CSV carry their frame
_UCDS = {
    "ra": "pos.eq.ra", "raj2000": "pos.eq.ra", "radeg": "pos.eq.ra", "raicrs": "pos.eq.ra",
    "dec": "pos.eq.dec", "dej2000": "pos.eq.dec", "decj2000": "pos.eq.dec", "decdeg": "pos.eq.dec",
    "deicrs": "pos.eq.dec", "glon": "pos.galactic.lon", "glat": "pos.galactic.lat",
}


@dataclass(frozen=True)
class Limits:
    """What one user may keep (all their tables together) and send at once."""

    max_rows: int
    max_bytes: int
    max_columns: int


def schema_of(user: str) -> str:
    """The schema of ``user``'s tables: ``user_<name>``.

    A name that is already a short lower-case identifier is used as it is (``alice`` ->
    ``user_alice``); any other is folded to one and given 8 hex digits of its SHA-256, so two
    users whose names fold alike (``Alice.X``, ``alice_x``) never share a schema.
    """
    if _CLEAN_USER.match(user):
        schema = PREFIX + user
    else:
        base = re.sub(r"[^a-z0-9_]+", "_", user.lower()).strip("_")[:40] or "u"
        schema = f"{PREFIX}{base}_{hashlib.sha256(user.encode('utf-8')).hexdigest()[:8]}"
    published = {pg_schema(d.name) for d in load_schemas()} | {a.lower() for a in DEFAULT_SCHEMA_ALIASES}
    if schema in published:
        raise AuthError(f"your user name maps to schema {schema}, which is a published schema of this service: "
                        "ask the operator", status=403, token_error=None)
    return schema


def _owner(caller: Caller, what: str) -> str:
    if caller.user is None:
        raise AuthError(f"{what} needs an authenticated user: send a bearer token")
    return caller.user


def parse_name(text: str) -> tuple[str, str]:
    """``schema.table`` -> (schema, table), both lower case; UsageError for a name that cannot be one."""
    schema, dot, table = text.strip().partition(".")
    if not dot or not schema or not table:
        raise UsageError(f"table name {text!r}: give it as schema.table (your schema is user_<name>)")
    for part, what in ((schema, "schema"), (table, "table")):
        if not _NAME.match(part) or len(part) > _MAX_NAME:
            raise UsageError(f"{what} name {part!r} is not valid: letters, digits and _ starting with a letter, "
                             f"at most {_MAX_NAME} characters")
    if is_reserved(table):
        raise UsageError(f"table name {table} is an ADQL/SQL reserved word: choose another")
    return schema.lower(), table.lower()


def _own_name(caller: Caller, text: str, what: str) -> tuple[str, str, str]:
    """(owner, schema, table) of a table the caller writes: in their own schema."""
    owner = _owner(caller, what)
    schema, table = parse_name(text)
    mine = schema_of(owner)
    if schema != mine:
        if schema in {pg_schema(d.name) for d in load_schemas()}:
            raise AuthError(f"{schema} is a published schema: user tables go in your schema {mine}",
                            status=403, token_error=None)
        raise AuthError(f"you may create tables only in your own schema, {mine}", status=403, token_error=None)
    return owner, schema, table


def body_format(content_type: str | None, fmt: str | None = None) -> str:
    """The format of a request body: ``FORMAT`` (votable, csv, tsv, parquet) or the Content-Type."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise UsageError(f"Content-Type {media}: send the table itself as the request body (VOTable, CSV, TSV "
                         "or Parquet), not as a form")
    if fmt:
        if fmt.lower() not in set(FORMATS.values()):
            raise UsageError(f"FORMAT: {fmt!r} is not a table format here (votable, csv, tsv, parquet, fits)")
        return fmt.lower()
    if media in FORMATS:
        return FORMATS[media]
    raise UsageError(f"Content-Type {media or '(none)'!r}: send the table as {', '.join(sorted(FORMATS))} "
                     "(or name its format with FORMAT=votable|csv|tsv|parquet|fits)")


# -- reading a body --------------------------------------------------------------------------------


@dataclass
class _Incoming:
    """A body read and typed: its columns and rows (COPY text from a VOTable, or converted arrays)."""

    columns: list[Column]
    nrows: int
    copy_text: bytes | None = None
    source: SourceTable | None = None
    arrays: dict[str, Any] = field(default_factory=dict)
    #: the table's description, when the body gives one (a VOSI table definition)
    description: str | None = None


def _infer(name: str, values: np.ndarray, unit: str | None) -> Column:
    """A column for the values pyarrow read: integers as long, floats as double, the rest as text."""
    kind = np.ma.getdata(values).dtype.kind
    ctype = {"b": "boolean", "i": "long", "u": "long", "f": "double"}.get(kind, "text")
    return Column(name=name, type=ctype, description="", unit=unit, ucd=_UCDS.get(fold(name)) if ctype == "double"
                  else None)


def _check_columns(label: str, names: Sequence[str], max_columns: int) -> None:
    if len(names) > max_columns:
        raise UsageError(f"{label}: {len(names)} columns, more than the {max_columns} a table may have here")
    seen: dict[str, str] = {}
    for n in names:
        if not n or len(n.encode("utf-8")) > _MAX_NAME or any(ord(c) < 32 or c in '"\x7f' for c in n):
            raise UsageError(f"{label}: column name {n!r} is not accepted (1 to {_MAX_NAME} bytes, no double "
                             "quote or control character)")
        if n.lower() in seen:
            raise UsageError(f"{label}: columns {seen[n.lower()]} and {n} have the same name in ADQL, which "
                             "ignores case")
        seen[n.lower()] = n


_VOSI_ROOT = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?table[\s>]")
_VOTABLE_ROOT = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?VOTABLE[\s>]")


def _vosi_as_votable(label: str, data: bytes) -> tuple[bytes, str | None]:
    """A VOSI ``table`` document (what pyvo's ``create_table`` sends by default: the columns, no
    rows) as the VOTable of FIELDs it declares, and the table's description.

    Read with no DTD, entity or network access; the VOTable is built with astropy's tree (its
    FIELDs then go through the same typing as any uploaded VOTable).
    """
    from astropy.io.votable.tree import Field, Resource, TableElement, VOTableFile
    from lxml import etree

    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise UsageError(f"{label}: the table definition may not have a DTD or entities")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise UsageError(f"{label}: not a readable VOSI table definition ({exc})") from None

    def text(el: Any, tag: str) -> str | None:
        found = el.find(f"{{*}}{tag}")  # lxml: any namespace, or none
        return None if found is None or found.text is None else found.text.strip() or None

    votable = VOTableFile()
    resource = Resource()
    votable.resources.append(resource)
    table = TableElement(votable)
    resource.tables.append(table)
    for col in root.iter("{*}column"):
        dtype = col.find("{*}dataType")
        name = text(col, "name")
        if name is None or dtype is None or not (dtype.text or "").strip():
            raise UsageError(f"{label}: every column of the table definition needs a name and a dataType")
        try:
            table.fields.append(Field(
                votable, name=name.strip('"'), datatype=dtype.text.strip(), arraysize=dtype.get("arraysize"),
                xtype=dtype.get("extendedType") or dtype.get("xtype"), unit=text(col, "unit"), ucd=text(col, "ucd"),
                utype=text(col, "utype")))
        except Exception as exc:  # astropy refuses bad datatypes and arraysizes with several types
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise UsageError(f"{label}: column {name}: {reason}") from None
        description = text(col, "description")
        if description:
            table.fields[-1].description = description
    if not table.fields:
        raise UsageError(f"{label}: the table definition declares no column")
    table.create_arrays(0)
    out = io.BytesIO()
    votable.to_xml(out)
    return out.getvalue(), text(root, "description")


def _read(label: str, data: bytes, fmt: str, max_columns: int) -> _Incoming:
    """Read and type a body (no database); UsageError for anything wrong with it."""
    if fmt == "votable":
        head = data[:4096]
        description = None
        if _VOSI_ROOT.search(head) and not _VOTABLE_ROOT.search(head):
            data, description = _vosi_as_votable(label, data)
        try:
            up = read_upload(UploadRef(name="t"), data, 0, max_columns=max_columns)
        except UsageError as exc:
            raise type(exc)(str(exc).replace("UPLOAD TAP_UPLOAD.t", label)) from None
        return _Incoming(list(up.table.columns), up.nrows, copy_text=up.copy_text, description=description)
    suffix = {"csv": ".csv", "tsv": ".tsv", "parquet": ".parquet", "fits": ".fits"}[fmt]
    with tempfile.TemporaryDirectory(prefix="vlkb-usertable-") as tmp:
        path = Path(tmp) / f"body{suffix}"
        path.write_bytes(data)
        try:
            source = read_source(str(path), fmt)
        except CatalogFileError as exc:
            raise UsageError(f"{label}: not a readable {fmt} table ({str(exc).replace(str(path), 'body')})") from None
    source = SourceTable(label, source.columns, source.units, source.nrows, source.first_line)
    _check_columns(label, list(source.columns), max_columns)
    if not source.columns:
        raise UsageError(f"{label}: the {fmt} body has no column")
    columns = [_infer(n, v, source.units.get(n)) for n, v in source.columns.items()]
    return _Incoming(columns, source.nrows, source=source)


def _convert(label: str, decl: Table, incoming: _Incoming) -> _Incoming:
    """The rows of a CSV/Parquet body converted to ``decl``'s columns (catalogue ingest's checks)."""
    if incoming.source is None:
        return incoming
    mapping: dict[str, str] = {}
    extra = []
    for n in incoming.source.columns:
        try:
            col = decl.column(n)
        except KeyError:
            extra.append(n)
            continue
        if not col.published:
            extra.append(n)
        mapping[n] = col.name
    if extra:
        raise UsageError(f"{label}: the body has columns the table does not: {', '.join(extra)}")
    try:
        # every column mapped by its exact name: nothing is matched by folding here
        prepared = prepare(decl, incoming.source, ColumnMap(columns=mapping))
    except CatalogError as exc:
        raise UsageError(f"{label}: {exc}") from None
    if prepared.problems:
        shown = "; ".join(str(p) for p in prepared.problems[:_SHOWN])
        more = len(prepared.problems) - _SHOWN
        raise UsageError(f"{label}: {int(prepared.bad.sum())} bad rows, nothing written: {shown}"
                         + (f" (and {more} more)" if more > 0 else ""))
    incoming.arrays = prepared.columns
    return incoming


def _match_fields(label: str, decl: Table, columns: Sequence[Column]) -> list[Column]:
    """The columns of ``decl`` a VOTable's FIELDs name (by name, ignoring case), in FIELD order."""
    published = {col.name.lower(): col for col in decl.published_columns}
    missing = [c.name for c in columns if c.name.lower() not in published]
    if missing:
        raise UsageError(f"{label}: the table has no column {missing[0]}")
    return [published[c.name.lower()] for c in columns]


# -- writes ------------------------------------------------------------------------------------------


def _check_quota(label: str, limits: Limits, used: tuple[int, int], rows: int, nbytes: int) -> None:
    for what, have, more, most in (("rows", used[0], rows, limits.max_rows),
                                   ("bytes", used[1], nbytes, limits.max_bytes)):
        if have + more > most:
            raise TooLargeError(f"{label}: {more} more {what} would pass your quota of {most} {what} in user "
                                f"tables (you hold {have}); nothing was written")


def _check_body(label: str, data: bytes, limits: Limits) -> None:
    if len(data) > limits.max_bytes:
        raise TooLargeError(f"{label}: {len(data)} bytes, more than your quota of {limits.max_bytes} bytes allows")


def _load(conn: psycopg.Connection, label: str, decl: Table, incoming: _Incoming) -> None:
    if incoming.copy_text is not None:
        cols = _match_fields(label, decl, incoming.columns)
        if incoming.copy_text:
            try:
                store.copy_text(conn, decl.model_copy(update={"columns": cols}), incoming.copy_text)
            except psycopg.errors.DataError as exc:
                raise UsageError(f"{label}: a value does not fit its column ({exc.diag.message_primary}); "
                                 "nothing was written") from None
    elif incoming.arrays:
        store.load_columns(conn, decl, incoming.arrays)


def _append_blocking(conninfo: str, owner: str, schema: str, name: str, label: str, incoming: _Incoming,
                     limits: Limits, body_bytes: int) -> int:
    with psycopg.connect(conninfo) as conn, conn.transaction():
        store.lock_owner(conn, owner)
        entry = _owned(store.find(conn, schema, name), owner, label)
        used = store.usage(conn, owner)
        _check_quota(label, limits, used, incoming.nrows, body_bytes)
        _convert(label, entry.decl, incoming)
        _load(conn, label, entry.decl, incoming)
        rows, nbytes = store.refresh_size(conn, entry.decl)
        _check_quota(label, limits, (used[0] - entry.nrows, used[1] - entry.nbytes), rows, nbytes)
        return rows - entry.nrows


def _owned(entry: UserTable | None, owner: str, label: str) -> UserTable:
    if entry is None:
        raise NotFoundError(f"table {label} does not exist")
    if entry.owner != owner:
        raise AuthError(f"only the owner of {label} may change it", status=403, token_error=None)
    return entry


def _conninfo(pool: AsyncConnectionPool) -> str:
    """Where writes connect: the pool's database (writes run in threads, over their own connection)."""
    info = pool.conninfo
    if not isinstance(info, str):  # the service always builds its pool from a string
        raise TypeError("the pool's conninfo is not a string")
    return info


async def _visible(pool: AsyncConnectionPool, caller: Caller, schema: str, name: str) -> UserTable | None:
    async with session(pool, caller) as conn:
        hits = await store.visible_tables(conn, schema, name)
    return hits[0] if hits else None


async def _writable(pool: AsyncConnectionPool, caller: Caller, text: str, what: str) -> tuple[str, UserTable]:
    """(owner, entry) of a table the caller changes: 404 unless they may read it, 403 unless they own it."""
    owner = _owner(caller, what)
    schema, name = parse_name(text)
    entry = await _visible(pool, caller, schema, name)
    return owner, _owned(entry, owner, f"{schema}.{name}")


def _prepare(caller: Caller, text: str, data: bytes, fmt: str, limits: Limits,
             description: str | None) -> tuple[str, Table, _Incoming]:
    """(owner, declaration, typed rows) of a new table: the name, size and body checks, no write."""
    owner, schema, name = _own_name(caller, text, "creating a table")
    label = f"{schema}.{name}"
    _check_body(label, data, limits)
    incoming = _read(label, data, fmt, limits.max_columns)
    decl = Table(name=name, schema_name=schema, columns=incoming.columns,
                 description=description or incoming.description or f"user table of {owner}")
    _convert(label, decl, incoming)
    return owner, decl, incoming


def create_blocking(conninfo: str, caller: Caller, text: str, data: bytes, fmt: str, limits: Limits, *,
                    groups: Sequence[str] = (), description: str | None = None) -> UserTable:
    """:func:`create` for a thread with no event loop (job runners: ``ctx.conninfo``, ``ctx.caller``).

    The same rules: an authenticated caller, their own schema, a valid new name, the quota;
    nothing is written when any check fails (one transaction)."""
    owner, decl, incoming = _prepare(caller, text, data, fmt, limits, description)
    label, groups = decl.qualified_name, read_groups(groups)
    with psycopg.connect(conninfo) as conn:
        with conn.transaction():
            store.lock_owner(conn, owner)
            other = store.claim_schema(conn, decl.schema_name, owner)
            if other is not None:
                raise AuthError(f"schema {decl.schema_name} belongs to another user", status=403, token_error=None)
            if store.find(conn, decl.schema_name, decl.name) is not None:
                raise UsageError(f"{label} already exists: DELETE it first, or append rows with POST /tap/load/{label}")
            used = store.usage(conn, owner)
            _check_quota(label, limits, used, incoming.nrows, len(data))
            store.create_table(conn, decl, owner, groups)
            _load(conn, label, decl, incoming)
            size = store.refresh_size(conn, decl)
            _check_quota(label, limits, used, size[0], size[1])
        entry = store.find(conn, decl.schema_name, decl.name)
        assert entry is not None  # just committed
        return entry


def check_new_blocking(conn: psycopg.Connection, caller: Caller, text: str) -> str:
    """The ``schema.table`` :func:`create_blocking` would make, checked before any work (a job's
    ``SAVE_AS``): an authenticated caller, their own schema, a valid name not taken yet. Nothing is
    written; :func:`create_blocking` checks all of it again when it writes."""
    _, schema, name = _own_name(caller, text, "saving a table")
    label = f"{schema}.{name}"
    if store.find(conn, schema, name) is not None:
        raise UsageError(f"{label} already exists: DELETE it first or choose another name")
    return label


async def create(pool: AsyncConnectionPool, caller: Caller, text: str, data: bytes, fmt: str, limits: Limits, *,
                 groups: Sequence[str] = (), description: str | None = None) -> UserTable:
    """Create ``text`` (``user_<name>.table``) from a body and load its rows; the registry entry."""
    _own_name(caller, text, "creating a table")  # the cheap refusals before a thread is taken
    return await asyncio.to_thread(create_blocking, _conninfo(pool), caller, text, data, fmt, limits,
                                   groups=groups, description=description)


_STATUS = re.compile(rb'<INFO[^>]*name="QUERY_STATUS"[^>]*value="(\w+)"')


async def create_from_query(pool: AsyncConnectionPool, caller: Caller, text: str, raw: dict[str, list[str]],
                            limits: Limits, *, maxrec_limit: int, timeout: float, groups: Sequence[str] = (),
                            description: str | None = None) -> UserTable:
    """Create ``text`` from the result of an ADQL query (``QUERY=``, run for the caller as TAP runs it):
    the result's columns, units and UCDs, and its rows. A result longer than MAXREC (at most
    ``maxrec_limit``) or one that fails part-way is refused: a table is never made from part of one."""
    from vo.tap import TapQuery, run_sync

    _own_name(caller, text, "creating a table")
    q = TapQuery.from_params({**raw, "LANG": raw.get("LANG", ["ADQL"]), "RESPONSEFORMAT": ["votable"],
                              "FORMAT": ["votable"]}, maxrec_default=maxrec_limit, maxrec_limit=maxrec_limit)
    chunks = await run_sync(pool, q, caller, timeout=timeout)
    data = bytearray()
    async for chunk in chunks:
        data += chunk
        if len(data) > limits.max_bytes:
            await chunks.aclose()  # type: ignore[attr-defined]
            raise TooLargeError(f"{text}: the query's result passes your quota of {limits.max_bytes} bytes; "
                                "nothing was written")
    statuses = _STATUS.findall(bytes(data[-4096:])) or [b"OK"]
    if statuses[-1] != b"OK":
        why = "more rows than MAXREC" if statuses[-1] == b"OVERFLOW" else "a failure part-way"
        raise UsageError(f"{text}: the query's result was cut short ({why}); nothing was written")
    return await create(pool, caller, text, bytes(data), "votable", limits, groups=groups,
                        description=description or f"result of: {q.query}"[:2000])


async def append(pool: AsyncConnectionPool, caller: Caller, text: str, data: bytes, fmt: str, limits: Limits) -> int:
    """Append the rows of a body to a table the caller owns; the number of rows added."""
    owner, entry = await _writable(pool, caller, text, "loading rows")
    label = entry.decl.qualified_name
    _check_body(label, data, limits)
    incoming = await asyncio.to_thread(_read, label, data, fmt, limits.max_columns)
    return await asyncio.to_thread(_append_blocking, _conninfo(pool), owner, entry.schema_name, entry.name, label,
                                   incoming, limits, len(data))


async def drop(pool: AsyncConnectionPool, caller: Caller, text: str) -> None:
    """Drop a table the caller owns."""
    owner, entry = await _writable(pool, caller, text, "deleting a table")

    def run(conninfo: str) -> None:
        with psycopg.connect(conninfo) as conn, conn.transaction():
            store.lock_owner(conn, owner)
            store.drop_table(conn, _owned(store.find(conn, entry.schema_name, entry.name), owner,
                                          entry.decl.qualified_name).decl)

    await asyncio.to_thread(run, _conninfo(pool))


def read_groups(values: Sequence[str], what: str = "READ_GROUPS") -> tuple[str, ...]:
    """Group names a table is shared with, from comma-separated values (``what`` names the
    parameter in an error: ``READ_GROUPS``, a job's ``SAVE_AS_GROUPS``)."""
    out: list[str] = []
    for v in values:
        for g in v.split(","):
            g = g.strip()
            if g and any(ord(c) < 32 or c == "\x7f" for c in g):
                raise UsageError(f"{what}: a group name holds a control character")
            if g and g not in out:
                out.append(g)
    return tuple(out)


@dataclass(frozen=True)
class TableUpdate:
    """``POST /tap/table-update``: TABLE, and INDEX (a column, or ``lon,lat`` for a spatial index)
    and/or READ_GROUPS (comma-separated; empty: private)."""

    table: str
    index: tuple[str, ...] | None = None
    unique: bool = False
    read_groups: tuple[str, ...] | None = None

    @classmethod
    def from_params(cls, raw: dict[str, list[str]]) -> TableUpdate:
        p = DaliParams(raw)
        table = p.required("TABLE", "name the table as schema.table")
        index = p.single("INDEX")
        groups = raw.get("READ_GROUPS")
        if index is None and groups is None:
            raise UsageError("give INDEX=column (or INDEX=ra,dec for a spatial index) or READ_GROUPS=g1,g2")
        cols = None
        if index is not None:
            cols = tuple(c.strip() for c in index.split(","))
            if len(cols) not in (1, 2) or not all(cols):
                raise UsageError(f"INDEX: {index!r}: one column, or two (lon,lat) for a spatial index")
        return cls(table, cols, p.flag("UNIQUE"), None if groups is None else read_groups(groups))


def _with_index(label: str, decl: Table, cols: Sequence[str], unique: bool) -> tuple[Table, Index]:
    """``decl`` with what an index on ``cols`` needs: a spatial one gets a generated point column."""
    try:
        found = [decl.column(c) for c in cols]
    except KeyError as exc:
        raise UsageError(f"INDEX: {label} has no column {exc.args[0].split(' ', 1)[0]}") from None
    if any(not c.published for c in found):
        raise UsageError(f"INDEX: {label} has no such column")
    if len(found) == 1:
        col = found[0]
        method = "gist" if col.type in ("point", "circle", "polygon", "path") else "btree"
        if unique and method == "gist":
            raise UsageError("UNIQUE: a spatial index cannot be unique")
        return decl, Index(columns=[col.name], method=method, unique=unique)
    lon, lat = found
    if any(c.type not in ("float", "double") for c in found):
        raise UsageError(f"INDEX: a spatial index needs two numeric columns (lon,lat in degrees); "
                         f"{lon.name}, {lat.name} are {lon.type}, {lat.type}")
    if unique:
        raise UsageError("UNIQUE: a spatial index cannot be unique")
    name = f"_pt_{lon.name}_{lat.name}".lower()[:_MAX_NAME]
    if any(c.name.lower() == name for c in decl.columns):
        raise UsageError(f"INDEX: {label} already has a spatial index on {lon.name}, {lat.name}")
    galactic = "galactic" in (lon.ucd or "") or fold(lon.name) in ("glon", "l")
    point = Column(
        name=name, type="point", published=False,
        ucd="pos.galactic" if galactic else "pos.eq", description=f"POINT({lon.name}, {lat.name}), GiST-indexed",
        # column names hold no double quote (checked on creation), so delimiting them is exact
        generated=f'spoint(radians("{lon.name}"), radians("{lat.name}"))',
    )
    new = decl.model_copy(update={"columns": [*decl.columns, point]})
    new = Table.model_validate(new.model_dump())
    return new, Index(columns=[name], method="gist")


def update_blocking(conn: psycopg.Connection, caller: Caller, upd: TableUpdate) -> UserTable:
    """Add an index to, or set the read groups of, a table the caller owns (the ``table_update`` job:
    ``vo/jobs/table_update.py``); the new registry entry. 404 unless the caller may read it, 403
    unless they own it."""
    owner = _owner(caller, "changing a table")
    schema, name = parse_name(upd.table)
    label = f"{schema}.{name}"
    with session_blocking(conn, caller) as c:
        seen = store.visible_tables_blocking(c, schema, name)
    entry = _owned(seen[0] if seen else None, owner, label)
    plan = None if upd.index is None else _with_index(label, entry.decl, upd.index, upd.unique)
    try:
        with conn.transaction():
            store.lock_owner(conn, owner)
            current = _owned(store.find(conn, schema, name), owner, label)
            if plan is not None:
                new, index = plan
                store.add_index(conn, current.decl, new, index)
                store.refresh_size(conn, new)
            if upd.read_groups is not None:
                store.set_groups(conn, current.decl, upd.read_groups)
    except psycopg.errors.UniqueViolation:
        raise UsageError(f"UNIQUE: the values of {', '.join(upd.index or ())} in {label} are not unique") from None
    out = store.find(conn, schema, name)
    assert out is not None  # just committed
    return out


# -- reads -------------------------------------------------------------------------------------------


async def readable(pool: AsyncConnectionPool, caller: Caller) -> list[Table]:
    """The declarations of the user tables ``caller`` may read (the access rule of the caller's session)."""
    async with session(pool, caller) as conn:
        return [t.decl for t in await store.visible_tables(conn)]


def readable_blocking(conn: psycopg.Connection, caller: Caller) -> list[Table]:
    """:func:`readable` over a blocking connection (job runners)."""
    with session_blocking(conn, caller) as c:
        return [t.decl for t in store.visible_tables_blocking(c)]


async def describe(pool: AsyncConnectionPool, caller: Caller, text: str) -> Table:
    """The declaration of a user table the caller may read (VOSI); NotFoundError otherwise."""
    try:
        schema, name = parse_name(text)
    except UsageError:
        raise NotFoundError(f"no table named {text}") from None
    entry = await _visible(pool, caller, schema, name)
    if entry is None:
        raise NotFoundError(f"no table named {text}")
    return entry.decl


def tableset_schemas(tables: Sequence[Table]) -> list[SchemaDecl]:
    """User tables grouped into schema declarations, for the VOSI tableset."""
    by_schema: dict[str, list[Table]] = {}
    for t in tables:
        by_schema.setdefault(t.schema_name, []).append(t)
    return [SchemaDecl(schema=s, description=f"tables of user {s.removeprefix(PREFIX)}", index=1000, tables=ts)
            for s, ts in sorted(by_schema.items())]


_MENTION = re.compile(r"user_", re.IGNORECASE)


def mentions_user_tables(query: str) -> bool:
    """Whether ADQL text may name a user table (they are read qualified, ``user_<name>.table``),
    so queries that cannot skip the lookup of the caller's user tables."""
    return _MENTION.search(query) is not None


def user_catalog(catalog: Catalog, tables: Sequence[Table]) -> Catalog:
    """``catalog`` plus user tables, under their own schema (geometry without a frame is ICRS)."""
    for t in tables:
        catalog = catalog.with_table(t, default_frame=ICRS)
    return catalog


# the parameters of a create: FORMAT, READ_GROUPS, DESCRIPTION (query string of the PUT)
def create_options(raw: dict[str, list[str]]) -> tuple[str | None, tuple[str, ...], str | None]:
    """(FORMAT, READ_GROUPS, DESCRIPTION) of a ``PUT /tap/tables/...`` query string."""
    p = DaliParams(raw)
    return p.single("FORMAT"), read_groups(raw.get("READ_GROUPS", [])), p.single("DESCRIPTION")

