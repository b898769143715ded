"""DataLink 1.1: ``/datalink/links`` (GET and POST), the files it links to and their previews.

``/datalink/files/{key}`` streams a dataset's FITS file and ``/datalink/preview/{key}`` its PNG
quick-look, where ``key`` is the DID's part after ``?``. Both look the dataset up in the
database (with the caller's access rights) and open only the location stored there, so no URL
can reach any other file. A local file is sent by ``FileResponse`` (byte ranges included); a
file on an fsspec URL is streamed through the service in chunks (``vo.storage``).
"""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import structlog
from fastapi import APIRouter
from fastapi.responses import FileResponse, Response, StreamingResponse

from app.access import CallerGroups
from app.deps import AppSettings, BaseUrl, DbPool
from app.params import RequestParams
from db.datasets import Dataset, dataset_by_key, visible_datasets
from vo import datalink, preview, storage
from vo.errors import FatalError, NotFoundError

__all__ = ["router"]

router = APIRouter(prefix="/datalink", tags=["DataLink"])

log = structlog.get_logger("vlkb.datalink")


@router.api_route("/links", methods=["GET", "POST"])
async def get_links(params: RequestParams, pool: DbPool, base: BaseUrl, groups: CallerGroups) -> Response:
    """The links of one or more datasets (DataLink 1.1 section 3)."""
    q = datalink.LinksQuery.from_params(params.values)
    async with pool.connection() as conn:
        found = await visible_datasets(conn, q.ids, groups)
    return Response(datalink.links_document(q.ids, found, base), media_type=datalink.DATALINK_MEDIA)


async def _dataset(pool: DbPool, key: str, groups: tuple[str, ...]) -> tuple[Dataset, storage.FileInfo]:
    async with pool.connection() as conn:
        ds = await dataset_by_key(conn, key, groups)
    if ds is None:
        raise NotFoundError(f"{key}: no such dataset")
    try:
        info = await asyncio.to_thread(storage.file_info, ds.path)
    except (OSError, ValueError, ImportError) as exc:  # gone, unreachable, or a protocol not installed
        log.error("dataset file missing", did=ds.publisher_did, path=ds.path, error=str(exc))
        raise NotFoundError(f"{key}: the file of this dataset is not available") from None
    return ds, info


@router.get("/files/{key:path}")
async def get_file(key: str, pool: DbPool, groups: CallerGroups) -> Response:
    """The dataset's FITS file, as stored (DataLink ``#this``)."""
    ds, info = await _dataset(pool, key, groups)
    name = storage.name_of(ds.path)
    if not storage.is_remote(ds.path):
        return FileResponse(ds.path, media_type="application/fits", filename=name)
    headers = {"Content-Length": str(info.size), "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"}
    return StreamingResponse(storage.iter_chunks(ds.path), media_type="application/fits", headers=headers)


@router.get("/preview/{key:path}")
async def get_preview(key: str, pool: DbPool, settings: AppSettings, groups: CallerGroups) -> FileResponse:
    """The dataset's PNG quick-look (DataLink ``#preview``), made on first request."""
    ds, _ = await _dataset(pool, key, groups)
    try:
        png = await asyncio.to_thread(
            preview.cached_preview, ds.path, ds.publisher_did, settings.home / "cache" / "previews"
        )
    except Exception as exc:  # a file that cannot be drawn is our fault, not the caller's
        log.error("preview failed", did=ds.publisher_did, exc_info=exc)
        raise FatalError("cannot make a preview of this dataset") from None
    return FileResponse(png, media_type="image/png")
