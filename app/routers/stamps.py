"""Postage stamps (issue 19): ``/stamps/sync`` (one position, one FITS back) and ``/stamps/async``
(UWS jobs of kind ``stamps``, the runner in ``vo/jobs/stamps.py``).

A sources table sent as the multipart file ``SOURCES`` with a new job is kept next to the job's
results (``sources.table``), so a worker anywhere reads it; it is checked when the job runs.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import APIRouter
from fastapi.responses import Response

from app.access import CurrentCaller
from app.capabilities import stamps_capabilities
from app.deps import AppSettings, DbPool
from app.params import RawParams, RequestParams
from app.routers.user_tables import save_as_terms
from app.routers.uws import uws_router
from app.routers.vosi import service_vosi
from app.settings import Settings
from vo.errors import UsageError
from vo.jobs.stamps import SOURCES_FILE
from vo.stamps.sync import sync_stamps

__all__ = ["async_router", "router"]

router = APIRouter(prefix="/stamps", tags=["Stamps"])


@router.api_route("/sync", methods=["GET", "POST"])
async def get_sync_stamps(params: RequestParams, pool: DbPool, caller: CurrentCaller,
                          settings: AppSettings) -> Response:
    """The stamps of one position on each requested survey, one image extension per survey (FITS)."""
    body = await sync_stamps(pool, params.values, caller, max_radius=settings.stamps_max_radius,
                             max_voxels=settings.merge_max_voxels)
    return Response(body, media_type="application/fits",
                    headers={"Content-Disposition": 'attachment; filename="stamps.fits"'})


service_vosi(router, "stamps", stamps_capabilities)  # vlkb's own standardIDs, docs/stamps.md


async def keep_sources(params: RawParams, settings: Settings) -> Mapping[str, bytes]:
    """The ``SOURCES`` table sent as a file, kept with the job (its size is bounded by the body limit)."""
    parts = {name for name in params.files if name.upper() == "SOURCES"}
    if not parts:
        return {}
    if len(parts) > 1:
        raise UsageError("SOURCES: send one table")
    data = (await params.read_files(parts))[parts.pop()]
    if not data.strip():
        raise UsageError("SOURCES: the table is empty")
    return {SOURCES_FILE: data}


async_router = uws_router("/stamps/async", "stamps", keep_files=keep_sources, terms=save_as_terms)
