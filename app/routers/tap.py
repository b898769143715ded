"""TAP 1.1 synchronous queries: ``/tap/sync`` (GET and POST)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from app.access import CallerGroups
from app.deps import AppSettings, DbPool
from app.params import RequestParams
from vo import tap

__all__ = ["router"]

router = APIRouter(prefix="/tap", tags=["TAP"])


@router.api_route("/sync", methods=["GET", "POST"])
async def tap_sync(params: RequestParams, pool: DbPool, settings: AppSettings,
                   groups: CallerGroups) -> StreamingResponse:
    """Run an ADQL query and stream its result (TAP 1.1 section 2.3)."""
    q = tap.TapQuery.from_params(
        params.values, maxrec_default=settings.maxrec_default, maxrec_limit=settings.maxrec_limit
    )
    chunks = await tap.run_sync(pool, q, tap.published_catalog(), timeout=settings.sync_timeout,
                                groups=groups)
    return StreamingResponse(chunks, media_type=q.format.media_type)
