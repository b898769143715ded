"""The legacy VLKB FITS-DB API of the ViaLactea client: ``/vlkb/datasets/vlkb_search``, ``vlkb_cutout``,
``vlkb_merge`` (XML layouts in ``vo/vialactea/legacy.py``).

A cutout or merge is a SODA job (kind ``vlkb_legacy``, the ``vo/jobs/soda.py`` runner) owned by
the caller and run with the caller's groups on whichever executor is configured; the handler
waits for it and answers the XML whose ``<URL>`` is the job's result. That download is served
directly (no redirect) by the UWS resources under ``/vlkb/datasets/vlkb_jobs``: only to the
caller who asked (anonymous jobs: to whoever has the unguessable job URL), until the job's
destruction time. An unknown or hidden ID, bad parameters and a region outside the dataset are
HTTP errors (4xx) with a DALI error document, never a 200 the client would save as a file.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from app.access import CurrentCaller
from app.deps import AppSettings, BaseUrl, DbPool
from app.params import RequestParams
from app.routers.uws import Jobs, uws_router
from vo.caller import Caller
from vo.caller import datasets as caller_datasets
from vo.dali import DaliParams
from vo.errors import NotFoundError, TransientError, UsageError, VlkbError
from vo.uws.model import ACTIVE, Job, JobResult, Phase
from vo.uws.service import JobService
from vo.vialactea import legacy

__all__ = ["KIND", "legacy_router"]

KIND = "vlkb_legacy"
XML = "application/xml"
#: longest a legacy cutout or merge is waited for before the client is told to try again, seconds
WAIT = 120.0



def _datasets(request: Request) -> str:
    """The datasets base the request came through (``/vlkb/datasets`` by default): its path's parent."""
    return request.url.path.rsplit("/", 1)[0]


DatasetsBase = Annotated[str, Depends(_datasets)]


def _who(caller: Caller) -> dict[str, str]:
    return {"username": caller.user or "", "policy": "PRIVATE" if caller.groups else "PUBLIC",
            "groupnames": " ".join(caller.groups)}


async def get_vlkb_search(params: RequestParams, pool: DbPool, caller: CurrentCaller,
                          base: BaseUrl, settings: AppSettings, datasets: DatasetsBase) -> Response:
    """Datasets meeting a cone or box (and velocity range), grouped by sub-survey, with overlap codes."""
    q = legacy.LegacyQuery.from_params(params.values)
    rows = await legacy.search(pool, q, caller, timeout=settings.sync_timeout)
    return Response(legacy.search_xml(rows, q, _who(caller), base + datasets), media_type=XML)


async def _finish(jobs: JobService, job: Job, datasets: str) -> Job:
    """Run the job and wait for its end (WAIT returns at each phase change)."""
    job = await jobs.run(job)
    deadline = time.monotonic() + WAIT
    while job.phase in ACTIVE and time.monotonic() < deadline:
        job = await jobs.wait(job, deadline - time.monotonic())
    if job.phase == Phase.COMPLETED:
        return job
    if job.phase in ACTIVE:
        raise TransientError("the job is still running; try again later "
                             f"(its results: {datasets}/vlkb_jobs/{job.job_id})")
    code, _, text = (job.error_message or "Error: the job failed").partition(": ")
    error = VlkbError(text or code)
    error.code = code if text else "Error"
    error.status = job.error_code or 500
    raise error


async def _answer(jobs: JobService, job: Job, q: legacy.LegacyQuery, who: dict[str, str], base: str,
                  description: str, nullvals: bool, datasets: str) -> Response:
    # annotated: JobService has a method named ``list``, which hides the builtin in its own
    # annotations (``-> list[JobResult]``), so mypy cannot iterate what job_results returns
    rows: Iterable[JobResult] = await jobs.job_results(job)
    results = {r.result_id: r for r in rows}
    fits_id = next(k for k in results if k.endswith(".fits"))
    cuts = await asyncio.to_thread(legacy.cut_entries, jobs.results, results["manifest"])
    percent = await asyncio.to_thread(legacy.null_percent, jobs.results, results[fits_id]) if nullvals else None
    url = f"{base}{datasets}/vlkb_jobs/{job.job_id}/results/{fits_id}"
    return Response(legacy.cut_xml(description, q, who, cuts, url, percent), media_type=XML)


async def get_vlkb_cutout(params: RequestParams, pool: DbPool, jobs: Jobs,
                         caller: CurrentCaller, base: BaseUrl, datasets: DatasetsBase) -> Response:
    """The cut of one dataset (``pubdid``) for the region; the XML gives the FITS file's URL."""
    q = legacy.LegacyQuery.from_params(params.values)
    p = DaliParams(params.values)
    did, nullvals = p.required("pubdid", "give the publisher DID of the dataset to cut"), p.flag("nullvals")
    if did not in await caller_datasets(pool, [did], caller):
        raise NotFoundError(f"{did}: no such dataset")
    job = await jobs.create(KIND, caller.user, q.soda_params([did]), groups=caller.groups)
    job = await _finish(jobs, job, datasets)
    return await _answer(jobs, job, q, _who(caller), base, "cutout of one dataset", nullvals, datasets)


async def get_vlkb_merge(params: RequestParams, pool: DbPool, jobs: Jobs,
                         caller: CurrentCaller, base: BaseUrl, datasets: DatasetsBase) -> Response:
    """The datasets ``pubdid=A;B;C`` of one sub-survey cut for the region and merged into one FITS file."""
    q = legacy.LegacyQuery.from_params(params.values)
    p = DaliParams(params.values)
    dids = [d.strip() for d in (p.single("pubdid") or "").split(";") if d.strip()]
    nullvals = p.flag("nullvals")
    if not dids:
        raise UsageError("pubdid: missing; give the publisher DIDs to merge, separated by ';'")
    if q.surveyname is None or q.species is None or q.transition is None:
        raise UsageError("surveyname: a merge needs surveyname, species and transition")
    found = await caller_datasets(pool, dids, caller)
    for did in dids:
        if did not in found:
            raise NotFoundError(f"{did}: no such dataset")
        if found[did].survey != q.surveyname:
            raise UsageError(f"pubdid: {did} is not a dataset of {q.surveyname}")
    job = await jobs.create(KIND, caller.user, q.soda_params(dids, merge=True), groups=caller.groups)
    job = await _finish(jobs, job, datasets)
    return await _answer(jobs, job, q, _who(caller), base, f"merge of {len(dids)} datasets", nullvals, datasets)


def legacy_router(datasets: str) -> APIRouter:
    """The legacy API under the datasets base ``datasets`` (e.g. ``/vlkb/datasets``)."""
    router = APIRouter(tags=["ViaLactea legacy API"])
    router.add_api_route(f"{datasets}/vlkb_search", get_vlkb_search, methods=["GET"], name="get_vlkb_search")
    router.add_api_route(f"{datasets}/vlkb_cutout", get_vlkb_cutout, methods=["GET"], name="get_vlkb_cutout")
    router.add_api_route(f"{datasets}/vlkb_merge", get_vlkb_merge, methods=["GET"], name="get_vlkb_merge")
    # the downloads: the legacy jobs' results, served directly to their owner
    router.include_router(uws_router(f"{datasets}/vlkb_jobs", KIND))
    return router
