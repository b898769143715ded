"""TAP 1.1 service description: the languages, features and output formats vlkb declares.

The TAP router publishes these in ``/tap/capabilities``; the query engine refuses what is
not declared here, so the two cannot drift apart.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from functools import cache, lru_cache, partial

from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict

from schemas import Table
from vo.adql import Catalog, Translation, translate
from vo.caller import Caller
from vo.dali import DaliParams
from vo.errors import UsageError
from vo.results import QueryPlan, stream_select
from vo.upload import UploadedTable, UploadRef, parse_upload, upload_catalog
from vo.usertables import mentions_user_tables, readable, user_catalog
from vo.vosi import LanguageFeature, OutputFormat
from vo.votable.writers import ResultFormat

__all__ = [
    "ADQL_FEATURES", "ADQL_VERSIONS", "OUTPUT_FORMATS", "UPLOAD_METHODS", "TapQuery", "plan_query",
    "published_catalog", "run_sync", "translate_published",
]

ADQL_VERSIONS = ("2.0", "2.1")

_GEO = "ivo://ivoa.net/std/TAPRegExt#features-adqlgeo"
_F = "ivo://ivoa.net/std/TAPRegExt#features-adql-"

ADQL_FEATURES: tuple[LanguageFeature, ...] = (
    *(LanguageFeature(_GEO, form) for form in (
        "POINT", "CIRCLE", "BOX", "POLYGON", "CONTAINS", "INTERSECTS", "AREA", "CENTROID",
        "COORD1", "COORD2", "COORDSYS", "DISTANCE",
    )),
    LanguageFeature(_F + "string", "LOWER", "Lower-cases a string"),
    LanguageFeature(_F + "string", "UPPER", "Upper-cases a string"),
    LanguageFeature(_F + "string", "ILIKE", "Case-insensitive LIKE"),
    LanguageFeature(_F + "sets", "UNION", None),
    LanguageFeature(_F + "sets", "EXCEPT", None),
    LanguageFeature(_F + "sets", "INTERSECT", None),
    LanguageFeature(_F + "common-table", "WITH", "Common table expressions"),
    LanguageFeature(_F + "type", "CAST", "CAST to the ADQL 2.1 types"),
    LanguageFeature(_F + "unit", "IN_UNIT", "Unit conversion of numeric values (astropy.units)"),
    LanguageFeature(_F + "offset", "OFFSET", "Skip rows of the result"),
)

OUTPUT_FORMATS: tuple[OutputFormat, ...] = (
    OutputFormat(
        "application/x-votable+xml;serialization=BINARY2", ("votable", "votable/b2", "binary2",
                                                             "application/x-votable+xml"),
        "ivo://ivoa.net/std/TAPRegExt#output-votable-binary2",
    ),
    OutputFormat(
        "application/x-votable+xml;serialization=TABLEDATA", ("votable/td", "votabletd"),
        "ivo://ivoa.net/std/TAPRegExt#output-votable-td",
    ),
    OutputFormat(
        "application/x-votable+xml;serialization=BINARY", ("votable/b", "binary"),
        "ivo://ivoa.net/std/TAPRegExt#output-votable-binary",
    ),
    OutputFormat("text/csv;header=present", ("csv",)),
    OutputFormat("text/tab-separated-values", ("tsv",)),
    OutputFormat("application/json", ("json",)),
    OutputFormat("application/vnd.apache.parquet", ("parquet",)),
)


#: TAPRegExt section 2.5: inline uploads (``param:``) and uploads by http/https URL, which the
#: service fetches through the guarded fetch of ``vo/upload_fetch.py`` (TAP 1.1 requires both)
UPLOAD_METHODS = (
    "ivo://ivoa.net/std/TAPRegExt#upload-inline",
    "ivo://ivoa.net/std/TAPRegExt#upload-http",
    "ivo://ivoa.net/std/TAPRegExt#upload-https",
)

_LANGS = {"ADQL", "ADQL-2.0", "ADQL-2.1"}


class TapQuery(BaseModel):
    """A TAP 1.1 query request (section 2.3), parsed from case-folded parameters."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    query: str
    lang: str
    maxrec: int
    format: ResultFormat
    runid: str | None = None
    #: the tables of UPLOAD (TAP 1.1 section 2.5.1), readable as TAP_UPLOAD.<name>
    uploads: tuple[UploadRef, ...] = ()

    @classmethod
    def from_params(cls, raw: dict[str, list[str]], *, maxrec_default: int, maxrec_limit: int,
                    max_query_length: int | None = None) -> TapQuery:
        """Validate the parameters; every problem is a UsageError naming the parameter.

        ``max_query_length`` bounds QUERY (characters) before anything parses it: translation
        costs CPU in proportion to the text, so the bound is what keeps one request cheap.
        """
        p = DaliParams(raw)
        request = p.single("REQUEST")
        if request is not None and request.lower() != "doquery":
            raise UsageError(f"REQUEST: expected doQuery, got {request!r}")
        lang = p.required("LANG", "this service accepts ADQL (ADQL-2.0, ADQL-2.1)")
        if lang.upper() not in _LANGS:
            raise UsageError(f"LANG: unsupported query language {lang!r}; use ADQL")
        query = p.required("QUERY", "give the ADQL query", strip=False)  # as sent: the length bound counts it all
        if max_query_length is not None and len(query) > max_query_length:
            raise UsageError(
                f"QUERY: {len(query)} characters, more than this service accepts ({max_query_length});"
                " send long lists of values as an UPLOAD table and join it"
            )
        version = p.single("VERSION")
        if version is not None and version not in ("1.0", "1.1"):
            raise UsageError(f"VERSION: unsupported TAP version {version!r}; use 1.0 or 1.1")
        return cls(
            query=query, lang=lang.upper(), maxrec=p.maxrec(maxrec_default, maxrec_limit),
            format=p.response_format("votable", legacy="FORMAT"), runid=p.single("RUNID"),
            uploads=parse_upload(p.repeated("UPLOAD")),
        )


@cache
def published_catalog() -> Catalog:
    """The tables ADQL may read: every published table, under its names and the legacy aliases."""
    return Catalog.published()


#: translations kept by :func:`translate_published`; with queries of up to _CACHED_LENGTH characters
#: (each entry holds the ADQL, the SQL and the column descriptions) a few MB at most
_CACHED_TRANSLATIONS = 512
_CACHED_LENGTH = 8192


@lru_cache(maxsize=_CACHED_TRANSLATIONS)
def _translate_cached(query: str, maxrec: int) -> Translation:
    return translate(query, published_catalog(), maxrec=maxrec)


def translate_published(query: str, maxrec: int) -> Translation:
    """The translation of ``query`` against the published tables, from a per-process LRU cache
    when the same text was translated before (a portal's or a script's repeated query; issue 16:
    parsing and rewriting cost about 1 ms of CPU per short query).

    Caching by text alone is safe because a translation depends on nothing else: the published
    catalogue is fixed for the life of the process, and who sees which rows is decided by the
    database at run time (row-level security in the caller's session), never by the SQL text.
    Queries that use uploads or the caller's own tables are not cached (their catalogue differs),
    nor long ones; failures are not kept (each raises anew). The result is shared: read only.
    """
    if len(query) > _CACHED_LENGTH:
        return translate(query, published_catalog(), maxrec=maxrec)
    return _translate_cached(query, maxrec)


def plan_query(q: TapQuery, uploads: Sequence[UploadedTable] = (), *,
               base_url: str | None = None, user_tables: Sequence[Table] = ()) -> tuple[QueryPlan, Translation]:
    """Translate ``q`` (ADQL, against the published tables, ``uploads`` and the caller's readable
    ``user_tables``) into the plan the results runner runs; the translation says which tables and
    columns it reads. ``base_url`` is the public base URL the answer's URLs (ObsCore
    ``access_url``, ``preview``) start with."""
    if uploads or user_tables:
        catalog = user_catalog(published_catalog(), user_tables)
        translation = translate(q.query, upload_catalog(catalog, uploads), maxrec=q.maxrec)
    else:
        translation = translate_published(q.query, q.maxrec)
    infos = {"QUERY": q.query, "LANG": q.lang}
    if q.runid is not None:
        infos["RUNID"] = q.runid
    plan = QueryPlan(translation.sql, translation.columns, q.format, q.maxrec, infos,
                     tables=tuple(u.temp_table() for u in uploads), base_url=base_url)
    return plan, translation


async def run_sync(
    pool: AsyncConnectionPool, q: TapQuery, caller: Caller, *, timeout: float,
    uploads: Sequence[UploadedTable] = (),
    shape: Callable[[AsyncIterator[bytes], Translation], AsyncIterator[bytes]] | None = None,
    base_url: str | None = None,
) -> AsyncIterator[bytes]:
    """Translate and run ``q`` for ``caller``; return its result stream, already started.

    What the caller may read is enforced by the database (row-level security, db/ddl.py), so
    no ADQL (joins, subqueries, aggregates) can see rows of a survey the caller may not read.

    Everything that can fail cheaply (parameters, ADQL, the allow-list, loading ``uploads``,
    the first rows) fails here, before the first byte, so the HTTP status can still say so; a
    later failure ends the document with a QUERY_STATUS=ERROR INFO (see ``vo.votable.writers``).
    The uploaded tables live in the query's transaction only (``db/upload.py``). ``shape``
    rewrites the stream knowing the translation (the ViaLactea client's TSV). ``base_url``:
    see :func:`plan_query` (the request's public base URL).
    """
    # the caller's user tables (the access rule of their session says which) join the catalog
    # only for a query that may name one, so other queries cost no lookup
    mine = await readable(pool, caller) if mentions_user_tables(q.query) else []
    # translation is CPU work proportional to the query's length: off the event loop
    plan, translation = await asyncio.to_thread(partial(plan_query, q, uploads, base_url=base_url,
                                                        user_tables=mine))
    chunks = await stream_select(pool, plan, caller, timeout=timeout)
    return chunks if shape is None else shape(chunks, translation)
