"""SIA 2.0: ``/sia/query`` (GET and POST), ``/sia/capabilities``, ``/sia/availability``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from app.access import CurrentCaller
from app.capabilities import sia_capabilities
from app.deps import AppSettings, BaseUrl, DbPool
from app.params import RequestParams
from app.routers.vosi import service_vosi
from vo import sia

__all__ = ["router"]

router = APIRouter(prefix="/sia", tags=["SIA"])


@router.api_route("/query", methods=["GET", "POST"])
async def sia_query(params: RequestParams, pool: DbPool, settings: AppSettings,
                    caller: CurrentCaller, base: BaseUrl) -> StreamingResponse:
    """Find images and cubes (SIA 2.0 section 2); the answer is an ObsCore VOTable."""
    q = sia.SiaQuery.from_params(
        params.values, maxrec_default=settings.maxrec_default, maxrec_limit=settings.maxrec_limit
    )
    chunks = await sia.search(pool, q, caller, timeout=settings.sync_timeout, base_url=base)
    return StreamingResponse(chunks, media_type=q.format.media_type)


service_vosi(router, "sia", sia_capabilities)  # SIA 2.0 section 3
