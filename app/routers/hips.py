"""HiPS (HiPS 1.0) of the service's 2D surveys: ``/hips/list`` and ``/hips/{survey}/{file}``.

The HiPS are built by ``vlkb hips build`` (:mod:`vo.hips.build`) into ``VLKB_HIPS_DIR``. A HiPS
is served only to callers who may read its survey (:func:`vo.hips.visible_hips`); a hidden survey,
a missing survey and a missing tile are the same 404. Which HiPS a caller may see is kept a few
seconds per set of groups (``VLKB_HIPS_VISIBILITY_TTL``, :class:`vo.hips.VisibilityCache`, one per
process on ``app.state``): a tile then costs no database round trip.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, PlainTextResponse, Response

from app.access import CurrentCaller
from app.deps import AppSettings, BaseUrl, DbPool
from vo import hips
from vo.errors import NotFoundError

__all__ = ["router"]

router = APIRouter(prefix="/hips", tags=["HiPS"])

_MEDIA = {".fits": "application/fits", ".png": "image/png"}


def _cache(request: Request, settings: AppSettings) -> hips.VisibilityCache:
    """The process's visibility cache, made on first use (no await: two requests cannot both make one)."""
    cache: hips.VisibilityCache | None = getattr(request.app.state, "hips_visibility", None)
    if cache is None:
        cache = request.app.state.hips_visibility = hips.VisibilityCache(settings.hips_visibility_ttl)
    return cache


Visibility = Annotated[hips.VisibilityCache, Depends(_cache)]


@router.get("/list")
async def get_hips_list(pool: DbPool, settings: AppSettings, base: BaseUrl, caller: CurrentCaller,
                        visibility: Visibility) -> PlainTextResponse:
    """The HiPS list (HiPS 1.0 section 4.4.4) of the HiPS the caller may see, for Aladin and other clients."""
    slugs = await visibility.visible(pool, caller, settings.hips_root)
    return PlainTextResponse(hips.hips_list(settings.hips_root, slugs, base), headers={"Vary": "Authorization"})


@router.get("/{survey}/{path:path}")
async def get_hips_file(survey: str, path: str, pool: DbPool, settings: AppSettings,
                        caller: CurrentCaller, visibility: Visibility) -> Response:
    """One file of a HiPS (``properties``, ``Moc.fits``, ``Norder3/Allsky.png``, ``Norder7/Dir0/Npix1234.fits``)."""
    found = hips.tile_file(settings.hips_root, survey, path)
    blank = None if found is not None else hips.blank_tile(settings.hips_root, survey, path)
    if (found is None and blank is None) or survey not in await visibility.visible(pool, caller, settings.hips_root):
        raise NotFoundError(f"{survey}/{path}: no such HiPS file")
    # tiles depend on who asks (a restricted survey's): shared caches must not keep them
    headers = {"Cache-Control": "private, max-age=3600", "Vary": "Authorization"}
    if found is None:
        return Response(blank, media_type="image/png", headers=headers)
    return FileResponse(found, media_type=_MEDIA.get(found.suffix, "text/plain; charset=utf-8"), headers=headers)
