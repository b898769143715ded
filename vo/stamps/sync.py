"""``/stamps/sync``: one position, every requested survey, one FITS file back.

Everything cheap happens first (parameters, survey names, coverage lookups for the caller),
then the pixels are cut, converted and written in a thread. When no survey gives a stamp the
answer is an error naming each survey's reason; when some do, the others are listed in the
primary header (``FAILn``).
"""

from __future__ import annotations

import asyncio

from psycopg_pool import AsyncConnectionPool

from vo.caller import Caller
from vo.errors import UsageError
from vo.stamps.coverage import covering, resolve
from vo.stamps.output import sync_file
from vo.stamps.params import StampParams
from vo.stamps.stamp import make_stamps

__all__ = ["sync_stamps"]


async def sync_stamps(pool: AsyncConnectionPool, raw: dict[str, list[str]], caller: Caller, *,
                      max_radius: float, max_voxels: int) -> bytes:
    """The stamps of the one position of ``raw`` on each survey, for ``caller``, as one FITS file."""
    q = StampParams.from_params(raw, max_radius=max_radius, max_voxels=max_voxels, sync=True)
    if q.stack is not None:
        raise UsageError("STACK: a stack needs several sources; use /stamps/async")
    surveys = await resolve(pool, q.surveys, caller)
    src = q.circles[0]
    inputs = []
    for s in surveys:
        cov = await covering(pool, s, (src.l, src.b), src.radius, src.icrs, caller)
        inputs.append((s.text, cov.full, cov.partial))
    stamps = await asyncio.to_thread(make_stamps, src, inputs, q.options)
    if not any(s.ok for s in stamps):
        raise UsageError("; ".join(f"{s.survey}: {s.error}" for s in stamps))
    return await asyncio.to_thread(sync_file, stamps, q.format == "cube")
