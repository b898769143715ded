"""The legacy VLKB FITS-DB API of the ViaLactea client: ``/vlkb/datasets/vlkb_search``, ``vlkb_cutout``,
``vlkb_merge`` (answers built by ``vo/vialactea/legacy.py`` and ``legacy_jobs.py``).

Cutouts and merges are SODA jobs the caller owns; their downloads are served directly (no
redirect) by the UWS resources under ``/vlkb/datasets/vlkb_jobs``: only to the caller who asked
(anonymous jobs: to whoever has the unguessable job URL), until the job's destruction time.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from app.access import CurrentCaller
from app.deps import AppSettings, BaseUrl, DbPool
from app.params import RequestParams
from app.routers.uws import Jobs, uws_router
from vo.vialactea import legacy, legacy_jobs

__all__ = ["legacy_router"]

XML = "application/xml"


def _datasets(request: Request) -> str:
    """The datasets base the request came through (``/vlkb/datasets`` by default): its path's parent."""
    return request.url.path.rsplit("/", 1)[0]


DatasetsBase = Annotated[str, Depends(_datasets)]


async def get_vlkb_search(params: RequestParams, pool: DbPool, caller: CurrentCaller,
                          base: BaseUrl, settings: AppSettings, datasets: DatasetsBase) -> Response:
    """Datasets meeting a cone or box (and velocity range), grouped by sub-survey, with overlap codes."""
    return Response(await legacy.answer_search(pool, params.values, caller, base + datasets,
                                               timeout=settings.sync_timeout), media_type=XML)


async def get_vlkb_cutout(params: RequestParams, pool: DbPool, jobs: Jobs,
                         caller: CurrentCaller, base: BaseUrl, datasets: DatasetsBase) -> Response:
    """The cut of one dataset (``pubdid``) for the region; the XML gives the FITS file's URL."""
    return Response(await legacy_jobs.cut(pool, jobs, params.values, caller, merge=False,
                                          results=f"{base}{datasets}/vlkb_jobs"), media_type=XML)


async def get_vlkb_merge(params: RequestParams, pool: DbPool, jobs: Jobs,
                         caller: CurrentCaller, base: BaseUrl, datasets: DatasetsBase) -> Response:
    """The datasets ``pubdid=A;B;C`` of one sub-survey cut for the region and merged into one FITS file."""
    return Response(await legacy_jobs.cut(pool, jobs, params.values, caller, merge=True,
                                          results=f"{base}{datasets}/vlkb_jobs"), media_type=XML)


def legacy_router(datasets: str) -> APIRouter:
    """The legacy API under the datasets base ``datasets`` (e.g. ``/vlkb/datasets``)."""
    router = APIRouter(tags=["ViaLactea legacy API"])
    router.add_api_route(f"{datasets}/vlkb_search", get_vlkb_search, methods=["GET"], name="get_vlkb_search")
    router.add_api_route(f"{datasets}/vlkb_cutout", get_vlkb_cutout, methods=["GET"], name="get_vlkb_cutout")
    router.add_api_route(f"{datasets}/vlkb_merge", get_vlkb_merge, methods=["GET"], name="get_vlkb_merge")
    # the downloads: the legacy jobs' results, served directly to their owner
    router.include_router(uws_router(f"{datasets}/vlkb_jobs", legacy_jobs.KIND))
    return router
