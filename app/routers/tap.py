"""TAP 1.1 synchronous queries: ``/tap/sync`` (GET and POST, with UPLOAD inline or by URL)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from app.access import CurrentCaller
from app.deps import AppSettings, BaseUrl, DbPool
from app.params import RawParams, RequestParams
from app.settings import Settings
from vo import tap
from vo.upload import UploadedTable, UploadLimits, inline_bytes, read_uploads, url_items
from vo.upload_fetch import FetchPolicy, afetch_urls

__all__ = ["fetch_policy", "query_uploads", "router", "tap_query", "upload_limits"]

router = APIRouter(prefix="/tap", tags=["TAP"])


def upload_limits(settings: Settings) -> UploadLimits:
    """The UPLOAD limits of the settings."""
    return UploadLimits(max_rows=settings.upload_max_rows, max_bytes=settings.upload_max_bytes,
                        max_columns=settings.upload_max_columns)


def fetch_policy(settings: Settings) -> FetchPolicy:
    """What an upload by URL may reach, and how long it may take."""
    return FetchPolicy(allow_hosts=tuple(settings.upload_url_allow_hosts), timeout=settings.upload_url_timeout)


def tap_query(params: RawParams, settings: Settings) -> tap.TapQuery:
    """The TAP query of the request's parameters, with the settings' MAXREC default and limit."""
    return tap.TapQuery.from_params(
        params.values, maxrec_default=settings.maxrec_default, maxrec_limit=settings.maxrec_limit,
        max_query_length=settings.adql_max_length,
    )


async def query_uploads(params: RawParams, q: tap.TapQuery, settings: Settings) -> list[UploadedTable]:
    """The tables UPLOAD names, read from the request's parts or fetched by URL, and checked."""
    if not q.uploads:
        return []
    limits = upload_limits(settings)
    parts = await params.read_files({ref.part for ref in q.uploads if ref.url is None})
    # the fetch is asynchronous I/O; what the URLs bring shares the byte limit with the parts
    fetched = await afetch_urls(url_items(q.uploads), limits.max_bytes - inline_bytes(q.uploads, parts),
                                fetch_policy(settings))
    # parsing and encoding are CPU work: off the event loop
    return await asyncio.to_thread(read_uploads, q.uploads, parts, limits, fetched)


@router.api_route("/sync", methods=["GET", "POST"])
async def tap_sync(params: RequestParams, pool: DbPool, settings: AppSettings,
                   caller: CurrentCaller, base: BaseUrl) -> StreamingResponse:
    """Run an ADQL query and stream its result (TAP 1.1 section 2.3)."""
    q = tap_query(params, settings)
    uploads = await query_uploads(params, q, settings)
    chunks = await tap.run_sync(pool, q, caller, timeout=settings.sync_timeout, uploads=uploads, base_url=base)
    return StreamingResponse(chunks, media_type=q.format.media_type)
