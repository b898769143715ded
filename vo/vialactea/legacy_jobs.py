"""The legacy ``vlkb_cutout`` and ``vlkb_merge`` requests, answered as SODA jobs the caller owns.

A cutout or merge is a job of kind :data:`KIND` (the ``vo/jobs/soda.py`` runner) run with the
caller's groups on whichever executor is configured; the request waits for it and answers the
XML whose ``<URL>`` is the job's FITS result, served by the legacy job list (``vlkb_jobs``).
An unknown or hidden ID, bad parameters and a region outside the dataset are errors (4xx),
never a 200 the client would save as a file.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping

from psycopg_pool import AsyncConnectionPool

from vo.caller import Caller, datasets
from vo.dali import DaliParams
from vo.errors import NotFoundError, TransientError, UsageError, VlkbError
from vo.uws.model import ACTIVE, Job, JobResult, Phase
from vo.uws.service import JobService
from vo.vialactea import legacy

__all__ = ["KIND", "WAIT", "cut"]

KIND = "vlkb_legacy"
#: longest a legacy cutout or merge is waited for before the client is told to try again, seconds
WAIT = 120.0


async def _dids(pool: AsyncConnectionPool, p: DaliParams, q: legacy.LegacyQuery, caller: Caller,
                merge: bool) -> list[str]:
    """The datasets to cut (``pubdid``; ``A;B;C`` for a merge), each readable by ``caller``."""
    if not merge:
        dids = [p.required("pubdid", "give the publisher DID of the dataset to cut")]
    else:
        dids = [d.strip() for d in (p.single("pubdid") or "").split(";") if d.strip()]
        if not dids:
            raise UsageError("pubdid: missing; give the publisher DIDs to merge, separated by ';'")
        if q.surveyname is None or q.species is None or q.transition is None:
            raise UsageError("surveyname: a merge needs surveyname, species and transition")
    found = await datasets(pool, dids, caller)
    for did in dids:
        if did not in found:
            raise NotFoundError(f"{did}: no such dataset")
        if merge and found[did].survey != q.surveyname:
            raise UsageError(f"pubdid: {did} is not a dataset of {q.surveyname}")
    return dids


async def _finish(jobs: JobService, job: Job, results: str) -> Job:
    """Run the job and wait for its end (WAIT returns at each phase change); its error as an error."""
    job = await jobs.run(job)
    deadline = time.monotonic() + WAIT
    while job.phase in ACTIVE and time.monotonic() < deadline:
        job = await jobs.wait(job, deadline - time.monotonic())
    if job.phase == Phase.COMPLETED:
        return job
    if job.phase in ACTIVE:
        raise TransientError(f"the job is still running; try again later (its results: {results}/{job.job_id})")
    code, _, text = (job.error_message or "Error: the job failed").partition(": ")
    error = VlkbError(text or code)
    error.code = code if text else "Error"
    error.status = job.error_code or 500
    raise error


async def cut(pool: AsyncConnectionPool, jobs: JobService, raw: Mapping[str, list[str]], caller: Caller, *,
              merge: bool, results: str) -> bytes:
    """The XML answer of a ``vlkb_cutout`` (one ``pubdid``) or ``vlkb_merge`` (``pubdid=A;B;C`` of one
    sub-survey) request; ``results`` is the public URL of the legacy job list."""
    q = legacy.LegacyQuery.from_params(raw)
    p = DaliParams(raw)
    dids = await _dids(pool, p, q, caller, merge)
    nullvals = p.flag("nullvals")
    job = await jobs.create(KIND, caller.user, q.soda_params(dids, merge=merge), groups=caller.groups)
    job = await _finish(jobs, job, results)
    # annotated: JobService has a method named ``list``, which hides the builtin in its own
    # annotations (``-> list[JobResult]``), so mypy cannot iterate what job_results returns
    rows: Iterable[JobResult] = await jobs.job_results(job)
    by_id = {r.result_id: r for r in rows}
    fits_id = next(k for k in by_id if k.endswith(".fits"))
    cuts = await asyncio.to_thread(legacy.cut_entries, jobs.results, by_id["manifest"])
    percent = await asyncio.to_thread(legacy.null_percent, jobs.results, by_id[fits_id]) if nullvals else None
    description = f"merge of {len(dids)} datasets" if merge else "cutout of one dataset"
    url = f"{results}/{job.job_id}/results/{fits_id}"
    return legacy.cut_xml(description, q, legacy.who(caller), cuts, url, percent)
