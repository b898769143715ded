"""Coverage MOCs (MOC 2.0): ``/moc`` (the surveys and bands the caller can see, or one dataset's MOC
with ``ID``), ``/moc/{survey}`` (all its bands) and ``/moc/{survey}/{band}``.

The serialisation is chosen by ``FORMAT`` (fits, ascii, json or a media type) or else by the
``Accept`` header; FITS by default. A survey the caller may not read is a 404, as if missing.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from app.access import CurrentCaller
from app.deps import AppSettings, BaseUrl, DbPool
from app.params import RawParams, RequestParams
from vo import moc
from vo.dali import DaliParams

__all__ = ["router"]

router = APIRouter(prefix="/moc", tags=["MOC"])


def _answer(request: Request, params: RawParams, coverage: moc.MOC, name: str) -> Response:
    fmt = moc.pick_format(DaliParams(params.values).single("FORMAT"), request.headers.get("accept"))
    ext = {"fits": "fits", "ascii": "txt", "json": "json"}[fmt.name]
    return Response(moc.encode(coverage, fmt), media_type=fmt.media_type,
                    headers={"Content-Disposition": f'inline; filename="{name}.moc.{ext}"', "Vary": "Accept"})


def _file_name(*parts: str) -> str:
    return "-".join(moc.band_key(p) or "moc" for p in parts)


@router.get("")
async def get_moc_index(request: Request, params: RequestParams, pool: DbPool, settings: AppSettings,
                        base: BaseUrl, caller: CurrentCaller) -> Response:
    """With ``ID``: the MOC of that dataset. Without: the surveys and bands the caller can see, with their MOC URLs."""
    did = DaliParams(params.values).single("ID")
    if did is not None:
        coverage = await moc.dataset_moc(pool, caller, did, settings.moc_order)
        return _answer(request, params, coverage, "dataset")
    bands = await moc.survey_bands(pool, caller)
    return JSONResponse({
        name: {"moc": f"{base}/moc/{name}", "bands": {b: f"{base}/moc/{name}/{b}" for b in keys}}
        for name, keys in bands.items()
    })


@router.get("/{survey}")
async def get_survey_moc(request: Request, survey: str, params: RequestParams, pool: DbPool, settings: AppSettings,
                         caller: CurrentCaller) -> Response:
    """The MOC of every dataset of ``survey`` the caller may read, all bands together."""
    coverage = await moc.survey_moc(pool, moc.MocCache(settings.moc_cache_dir), caller, survey, None,
                                    settings.moc_order)
    return _answer(request, params, coverage, _file_name(survey))


@router.get("/{survey}/{band}")
async def get_band_moc(request: Request, survey: str, band: str, params: RequestParams, pool: DbPool,
                       settings: AppSettings, caller: CurrentCaller) -> Response:
    """The MOC of one band of ``survey`` (``70um``, ``13co-1-0``: see ``/moc``)."""
    coverage = await moc.survey_moc(pool, moc.MocCache(settings.moc_cache_dir), caller, survey, band,
                                    settings.moc_order)
    return _answer(request, params, coverage, _file_name(survey, band))
