"""DataLink 1.1: ``/datalink/links`` (GET and POST), the files it links to and their previews.

``/datalink/files/{key}`` streams a dataset's FITS file and ``/datalink/preview/{key}`` its PNG
quick-look, where ``key`` is the DID's part after ``?``. Both look the dataset up in the
database (with the caller's access rights) and open only the location stored there, so no URL
can reach any other file. A local file is sent by ``FileResponse`` (byte ranges included); a
file on an fsspec URL is streamed through the service in chunks (``vo.storage``).
"""

from __future__ import annotations

from urllib.parse import quote

import structlog
from fastapi import APIRouter
from fastapi.responses import FileResponse, Response, StreamingResponse

from app.access import CurrentCaller
from app.deps import AppSettings, BaseUrl, DbPool
from app.params import RequestParams
from vo import datalink, preview, storage

__all__ = ["router"]

router = APIRouter(prefix="/datalink", tags=["DataLink"])

log = structlog.get_logger("vlkb.datalink")


@router.api_route("/links", methods=["GET", "POST"])
async def get_links(params: RequestParams, pool: DbPool, base: BaseUrl, caller: CurrentCaller) -> Response:
    """The links of one or more datasets (DataLink 1.1 section 3)."""
    q = datalink.LinksQuery.from_params(params.values)
    return Response(await datalink.links(pool, q, caller, base), media_type=datalink.DATALINK_MEDIA)


@router.get("/files/{key:path}")
async def get_file(key: str, pool: DbPool, caller: CurrentCaller) -> Response:
    """The dataset's FITS file, as stored (DataLink ``#this``)."""
    ds, info = await datalink.dataset_file(pool, key, caller)
    name = storage.name_of(ds.path)
    if not storage.is_remote(ds.path):
        return FileResponse(ds.path, media_type="application/fits", filename=name)
    headers = {"Content-Length": str(info.size), "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"}
    return StreamingResponse(storage.iter_chunks(ds.path), media_type="application/fits", headers=headers)


@router.get("/preview/{key:path}")
async def get_preview(key: str, pool: DbPool, settings: AppSettings, caller: CurrentCaller) -> FileResponse:
    """The dataset's PNG quick-look (DataLink ``#preview``), made on first request."""
    png = await preview.preview_file(pool, key, caller, settings.home / "cache" / "previews")
    return FileResponse(png, media_type="image/png")
