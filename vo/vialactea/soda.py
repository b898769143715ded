"""SODA on the ViaLactea client's datasets base: a cutout, or the merge its SIA merge rows promise.

The client's inventory tree shows a virtual merge row per sub-survey (overlapSky 0, its ID the
member DIDs joined by ``;``, :func:`vo.vialactea.sia.merge_row_dids`); a double-click asks
``soda/sync`` with that ID and the region, and gets the merged cut of those datasets (the merge
engine of ``/soda/merge``). Any other ID is the standard cutout.
"""

from __future__ import annotations

from collections.abc import Mapping

from psycopg_pool import AsyncConnectionPool

from vo import soda
from vo.caller import Caller, datasets
from vo.cutout.merge import Merged
from vo.dali import DaliParams
from vo.lookups import RecentLookups
from vo.vialactea.sia import merge_row_dids

__all__ = ["client_cutout"]


async def client_cutout(pool: AsyncConnectionPool, raw: Mapping[str, list[str]], caller: Caller, *,
                        max_voxels: int, recent: RecentLookups | None = None) -> soda.ServedCut | Merged:
    """The cut the client asked for: a merge for a merge row's ID, else the dataset's cutout
    (``recent``: as :func:`vo.soda.cutout_for`)."""
    ids = DaliParams(raw).repeated("ID")
    dids = merge_row_dids(ids[0]) if len(ids) == 1 else None
    # a DID with a ';' of its own (a dataset the caller may read) stays a cutout
    if dids is not None and not await datasets(pool, ids, caller):
        q = soda.SodaJobParams.from_params({**raw, "ID": dids}, merge=True)
        return await soda.merge_for(pool, q, caller, max_voxels=max_voxels)
    return await soda.cutout_for(pool, soda.SodaParams.from_params(dict(raw)), caller, recent)
