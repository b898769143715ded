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

from app.access import CurrentCaller
from app.deps import AppSettings, DbPool, Lookups
from app.params import RequestParams
from vo import soda
from vo.cutout.merge import Merged

__all__ = ["merge_response", "router"]

router = APIRouter(prefix="/soda", tags=["SODA"])

log = structlog.get_logger("vlkb.soda")


def cutout_response(served: soda.ServedCut) -> Response:
    """A planned cut as a FITS download, streamed as a worker thread reads the slab ahead (a small
    cut read with its plan, in one piece)."""
    ds, cut = served.dataset, served.cut
    log.info("cutout", did=ds.publisher_did, box=cut.box, size=cut.size)
    headers = {"Content-Disposition": f'attachment; filename="{soda.filename(ds.publisher_did)}"'}
    if served.pieces is None:
        return Response(cut.body, media_type="application/fits", headers=headers)
    return StreamingResponse(served.pieces, media_type="application/fits",
                             headers={**headers, "Content-Length": str(cut.size)})


async def merge_response(merged: Merged) -> Response:
    """A merge as a FITS download (serialised in a thread; its size is bounded by merge_max_voxels)."""
    body = await asyncio.to_thread(merged.to_bytes)
    log.info("merge", dids=merged.used, shape=merged.data.shape)
    return Response(body, media_type="application/fits",
                    headers={"Content-Disposition": 'attachment; filename="merge.fits"'})


@router.api_route("/sync", methods=["GET", "POST"])
async def get_sync_cutout(params: RequestParams, pool: DbPool, caller: CurrentCaller, recent: Lookups) -> Response:
    """A cutout of one dataset, as a FITS file (SODA 1.0 section 3)."""
    q = soda.SodaParams.from_params(params.values)
    return cutout_response(await soda.cutout_for(pool, q, caller, recent))


@router.api_route("/merge", methods=["GET", "POST"])
async def get_sync_merge(params: RequestParams, pool: DbPool, caller: CurrentCaller,
                         settings: AppSettings) -> Response:
    """Several datasets of one survey cut for one region and merged on a common grid (FITS)."""
    q = soda.SodaJobParams.from_params(params.values, merge=True)
    return await merge_response(await soda.merge_for(pool, q, caller, max_voxels=settings.merge_max_voxels))
