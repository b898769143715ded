"""TAP 1.1 synchronous queries: ``/tap/sync`` (GET and POST, with inline UPLOAD)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from app.access import CallerGroups
from app.deps import AppSettings, DbPool
from app.params import RequestParams
from app.settings import Settings
from vo import tap
from vo.upload import UploadLimits, read_uploads

__all__ = ["router", "upload_limits"]

router = APIRouter(prefix="/tap", tags=["TAP"])


def upload_limits(settings: Settings) -> UploadLimits:
    """The UPLOAD limits of the settings."""
    return UploadLimits(max_rows=settings.upload_max_rows, max_bytes=settings.upload_max_bytes)


@router.api_route("/sync", methods=["GET", "POST"])
async def tap_sync(params: RequestParams, pool: DbPool, settings: AppSettings,
                   groups: CallerGroups) -> StreamingResponse:
    """Run an ADQL query and stream its result (TAP 1.1 section 2.3)."""
    q = tap.TapQuery.from_params(
        params.values, maxrec_default=settings.maxrec_default, maxrec_limit=settings.maxrec_limit,
        max_query_length=settings.adql_max_length,
    )
    uploads = []
    if q.uploads:
        parts = await params.read_files({ref.part for ref in q.uploads})
        # parsing and encoding are CPU work: off the event loop
        uploads = await asyncio.to_thread(read_uploads, q.uploads, parts, upload_limits(settings))
    chunks = await tap.run_sync(pool, q, tap.published_catalog(), timeout=settings.sync_timeout, uploads=uploads,
                                groups=groups)
    return StreamingResponse(chunks, media_type=q.format.media_type)
