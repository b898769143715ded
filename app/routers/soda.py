"""SODA 1.0 synchronous cutouts, ``/soda/sync``, and merges, ``/soda/merge`` (GET and POST).

The dataset is looked up by its exact DID with the caller's access rights, so an unknown ID, a
path-like ID and a survey the caller may not read all give the same 404 NotFoundFault, and only
the path stored in ``vlkb.datasets`` is ever opened. Everything cheap (parameters, lookup,
header, pixel box) happens before the first byte so the status is honest; then the FITS file is
streamed as the slab is read. A merge (several IDs of one survey, one region) is computed in
a thread and sent whole: its size is bounded by ``merge_max_voxels``. The async forms are in
``app/routers/soda_async.py``.
"""

from __future__ import annotations

import asyncio

import structlog
from fastapi import APIRouter
from fastapi.responses import Response, StreamingResponse

from app.access import CallerGroups
from app.deps import AppSettings, DbPool
from app.params import RequestParams
from db.datasets import visible_datasets
from vo import soda
from vo.errors import MultiValuedParamNotSupported, NotFoundError

__all__ = ["merge_response", "router"]

router = APIRouter(prefix="/soda", tags=["SODA"])

log = structlog.get_logger("vlkb.soda")


@router.api_route("/sync", methods=["GET", "POST"])
async def get_sync_cutout(params: RequestParams, pool: DbPool, groups: CallerGroups) -> StreamingResponse:
    """A cutout of one dataset, as a FITS file (SODA 1.0 section 3)."""
    q = soda.SodaParams.from_params(params.values)
    async with pool.connection() as conn:
        ds = (await visible_datasets(conn, [q.id], groups)).get(q.id)
    if ds is None:
        raise NotFoundError(f"{q.id}: no such dataset")
    await asyncio.to_thread(soda.require_file, ds)
    cut = await asyncio.to_thread(soda.cutout, ds.path, ds.publisher_did, q)
    log.info("cutout", did=ds.publisher_did, box=cut.box, size=cut.size)
    return StreamingResponse(
        cut.chunks(),
        media_type="application/fits",
        headers={"Content-Disposition": f'attachment; filename="{soda.filename(ds.publisher_did)}"',
                 "Content-Length": str(cut.size)},
    )


@router.api_route("/merge", methods=["GET", "POST"])
async def get_sync_merge(params: RequestParams, pool: DbPool, groups: CallerGroups,
                         settings: AppSettings) -> Response:
    """Several datasets of one survey cut for one region and merged on a common grid (FITS)."""
    q = soda.SodaJobParams.from_params(params.values, merge=True)
    return await merge_response(q, pool, groups, settings)


async def merge_response(q: soda.SodaJobParams, pool: DbPool, groups: tuple[str, ...],
                         settings: AppSettings) -> Response:
    """The merged FITS of ``q`` (one region), for ``/soda/merge`` and the ViaLactea client's merge rows."""
    if len(q.regions) > 1:
        raise MultiValuedParamNotSupported("POS: a sync merge takes one region; use /soda/merge/async for several")
    async with pool.connection() as conn:
        found = await visible_datasets(conn, q.ids, groups)
    missing = [i for i in q.ids if i not in found]
    if missing:
        raise NotFoundError(f"{missing[0]}: no such dataset")
    region = q.regions[0]
    assert region is not None
    merged = await asyncio.to_thread(soda.merge, [found[i] for i in q.ids], q, region,
                                     max_voxels=settings.merge_max_voxels)
    body = await asyncio.to_thread(merged.to_bytes)
    log.info("merge", dids=merged.used, shape=merged.data.shape)
    return Response(body, media_type="application/fits",
                    headers={"Content-Disposition": 'attachment; filename="merge.fits"'})
