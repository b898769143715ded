"""The ViaLactea theoretical SED fit: ``/sedmods/searchd`` (and ``/sedmods/searchd/``).

The client calls it at the host's root with the whole argument percent-encoded after ``?``
(no ``name=``), so the handler reads the raw query string. The model grid is read from
``compactsources.sed_models`` on the first request and kept for the life of the process:
reloading the table needs a restart (or a new worker process). The fit and the JSON
encoding run in a worker thread, off the event loop. The rules are in ``vo/vialactea/sedfit.py``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from app.deps import DbPool
from vo.vialactea.sedfit import SedFitParams, SedGrid, answer_json, fit, load_grid, parse_searchd

__all__ = ["router"]

router = APIRouter(tags=["ViaLactea"])


def _params(request: Request) -> SedFitParams:
    return parse_searchd(request.url.query)


async def _grid(request: Request, pool: DbPool) -> SedGrid:
    """The process's model grid, read once; concurrent first requests wait for one read."""
    state = request.app.state
    grid: SedGrid | None = getattr(state, "sed_grid", None)
    if grid is not None:
        return grid
    lock: asyncio.Lock | None = getattr(state, "sed_grid_lock", None)
    if lock is None:  # no await since the check above: no other task can have made one
        lock = state.sed_grid_lock = asyncio.Lock()
    async with lock:
        grid = getattr(state, "sed_grid", None)
        if grid is None:
            grid = state.sed_grid = await load_grid(pool)  # an empty table raises and is not cached
    return grid


SedFitQuery = Annotated[SedFitParams, Depends(_params)]
ModelGrid = Annotated[SedGrid, Depends(_grid)]


def _fit_answer(grid: SedGrid, params: SedFitParams) -> bytes:
    return answer_json(grid, fit(grid, params))


@router.get("/sedmods/searchd")
async def get_sed_fit(params: SedFitQuery, grid: ModelGrid) -> Response:
    """Fit observed fluxes against every SED model; the models within deltachi2 of the best, as JSON."""
    body = await asyncio.to_thread(_fit_answer, grid, params)
    return Response(body, media_type="application/json")


# the client's own URL has no trailing slash, others do; a redirect would not be followed
router.add_api_route("/sedmods/searchd/", get_sed_fit, methods=["GET"], include_in_schema=False,
                     name="get_sed_fit_slash")
