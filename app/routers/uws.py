"""UWS 1.1 job resources (section 2.2), as a router factory reused by each async protocol.

``uws_router("/tap/async", "tap")`` gives the job list, the job and its children
(phase, executionduration, destruction, quote, error, parameters, results, owner). Handlers
parse, call one ``JobService`` method, and render; the rules live in ``vo/uws/service.py``.
Parameters are not checked at creation: a bad request is still a job, which ends in ERROR with
the reason (what clients and taplint's QAS stage expect); the kind's runner validates them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse

from app.access import CurrentCaller
from app.deps import AppSettings, BaseUrl
from app.params import RawParams, RequestParams
from app.settings import Settings
from vo.caller import Caller
from vo.readahead import read_ahead
from vo.uws import xml
from vo.uws.model import Job, JobResult, Phase
from vo.uws.results import ResultStore
from vo.uws.service import JobService, UwsParams
from vo.votable.errors import error_document

__all__ = ["KeepFiles", "Terms", "uws_router"]

XML = "application/xml"
TEXT = "text/plain"


def _service(request: Request) -> JobService:
    return request.app.state.jobs


#: A kind's hook for the files sent with its job parameters (TAP UPLOAD): checks them against
#: the parameters and returns what the job keeps, by file name in its results directory.
#: It runs before the job exists, so a bad file refuses the request and leaves no job behind.
KeepFiles = Callable[[RawParams, Settings], Awaitable[Mapping[str, bytes]]]

#: A kind's terms: what a job of it is promised when accepted (e.g. its SAVE_AS quota), from this
#: process's settings; kept with the job, so whichever process runs it holds it to the same.
Terms = Callable[[Settings], Mapping[str, Any]]

Jobs = Annotated[JobService, Depends(_service)]


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _store_files(results: ResultStore, job_id: str, files: Mapping[str, bytes]) -> None:
    for name, data in files.items():
        with results.writer(job_id, name) as out:
            out.write(data)


def uws_router(prefix: str, kind: str, *, keep_files: KeepFiles | None = None,
               terms: Terms | None = None) -> APIRouter:
    """The UWS resources of jobs of ``kind`` under ``prefix``.

    ``keep_files`` lets a kind accept files with the parameters (at creation and by POST to
    ``/parameters``); they are written next to the job's results, so a worker anywhere reads
    them, and go when the job is destroyed. ``terms`` gives what each new job is promised.
    """
    router = APIRouter(prefix=prefix, tags=[f"UWS ({kind})"])

    async def keep(params: RawParams, settings: Settings) -> Mapping[str, bytes]:
        return {} if keep_files is None else await keep_files(params, settings)

    async def load(jobs: JobService, job_id: str, caller: Caller) -> Job:
        return await jobs.get(kind, job_id, caller.user)

    def job_url(base: str, job_id: str) -> str:
        return f"{base}{prefix}/{job_id}"

    @router.get("", name=f"{kind}_list_jobs")
    async def list_jobs(params: RequestParams, jobs: Jobs, caller: CurrentCaller, base: BaseUrl) -> Response:
        p = UwsParams(params.values)
        found = await jobs.list(kind, caller.user, phases=p.phases(), after=p.after(), last=p.last())
        return Response(xml.jobs_xml(found, base + prefix), media_type=XML)

    @router.post("", name=f"{kind}_create_job")
    async def create_job(params: RequestParams, jobs: Jobs, caller: CurrentCaller, base: BaseUrl,
                         settings: AppSettings) -> Response:
        p = UwsParams(params.values)
        phase, run_id = p.command("RUN"), p.single("RUNID")
        files = await keep(params, settings)
        job = await jobs.create(kind, caller.user, p.job_parameters(), run_id=run_id, groups=caller.groups,
                                base_url=base, terms=None if terms is None else terms(settings))
        if files:
            try:
                await asyncio.to_thread(_store_files, jobs.results, job.job_id, files)
            except BaseException:
                await jobs.delete(job)
                raise
        if phase == "RUN":
            await jobs.run(job)
        return _see_other(job_url(base, job.job_id))

    @router.get("/{job_id}", name=f"{kind}_get_job")
    async def get_job(job_id: str, params: RequestParams, jobs: Jobs, caller: CurrentCaller, base: BaseUrl) -> Response:
        job = await load(jobs, job_id, caller)
        wait = UwsParams(params.values).wait()
        if wait is not None:
            job = await jobs.wait(job, *wait)
        results = await jobs.job_results(job)
        return Response(xml.job_xml(job, results, job_url(base, job.job_id)), media_type=XML)

    @router.post("/{job_id}", name=f"{kind}_post_job")
    async def post_job(job_id: str, params: RequestParams, jobs: Jobs, caller: CurrentCaller,
                       base: BaseUrl) -> Response:
        job = await load(jobs, job_id, caller)
        p = UwsParams(params.values)
        if p.action() == "DELETE":
            await jobs.delete(job)
            return _see_other(base + prefix)
        await _change_phase(jobs, job, p.command("RUN", "ABORT"))
        return _see_other(job_url(base, job.job_id))

    @router.delete("/{job_id}", name=f"{kind}_delete_job")
    async def delete_job(job_id: str, jobs: Jobs, caller: CurrentCaller, base: BaseUrl) -> Response:
        await jobs.delete(await load(jobs, job_id, caller))
        return _see_other(base + prefix)

    @router.post("/{job_id}/phase", name=f"{kind}_post_job_phase")
    async def post_job_phase(job_id: str, params: RequestParams, jobs: Jobs, caller: CurrentCaller,
                             base: BaseUrl) -> Response:
        job = await load(jobs, job_id, caller)
        p = UwsParams(params.values)
        p.required("PHASE", "expected RUN or ABORT")
        await _change_phase(jobs, job, p.command("RUN", "ABORT"))
        return _see_other(job_url(base, job_id))

    def get_value(value: Callable[[Job], str]) -> Callable[..., Awaitable[Response]]:
        async def get_job_value(job_id: str, jobs: Jobs, caller: CurrentCaller) -> Response:
            return Response(value(await load(jobs, job_id, caller)), media_type=TEXT)
        return get_job_value

    # the job's one-value children as text (UWS 1.1 section 2.2.3)
    values: dict[str, Callable[[Job], str]] = {
        "phase": lambda job: job.phase,
        "executionduration": lambda job: str(job.execution_duration),
        "destruction": lambda job: xml.isotime(job.destruction) if job.destruction else "",
        "quote": lambda job: xml.isotime(job.quote) if job.quote else "",
        "owner": lambda job: job.owner or "",
    }
    for child, value in values.items():
        router.add_api_route(f"/{{job_id}}/{child}", get_value(value), methods=["GET"], name=f"{kind}_get_job_{child}")

    @router.post("/{job_id}/executionduration", name=f"{kind}_post_job_executionduration")
    async def post_job_executionduration(job_id: str, params: RequestParams, jobs: Jobs, caller: CurrentCaller,
                                         base: BaseUrl) -> Response:
        job = await load(jobs, job_id, caller)
        await jobs.set_execution_duration(job, UwsParams(params.values).execution_duration())
        return _see_other(job_url(base, job_id))

    @router.post("/{job_id}/destruction", name=f"{kind}_post_job_destruction")
    async def post_job_destruction(job_id: str, params: RequestParams, jobs: Jobs, caller: CurrentCaller,
                                   base: BaseUrl) -> Response:
        job = await load(jobs, job_id, caller)
        await jobs.set_destruction(job, UwsParams(params.values).destruction())
        return _see_other(job_url(base, job_id))

    @router.get("/{job_id}/error", name=f"{kind}_get_job_error")
    async def get_job_error(job_id: str, jobs: Jobs, caller: CurrentCaller) -> Response:
        # TAP 1.1 section 2.11: the error document is a VOTable with QUERY_STATUS=ERROR
        job = await load(jobs, job_id, caller)
        if job.phase != Phase.ERROR:
            return Response("", media_type=TEXT)
        return Response(error_document(xml.error_text(job)), media_type="application/x-votable+xml")

    @router.get("/{job_id}/parameters", name=f"{kind}_get_job_parameters")
    async def get_job_parameters(job_id: str, jobs: Jobs, caller: CurrentCaller) -> Response:
        return Response(xml.parameters_xml(await load(jobs, job_id, caller)), media_type=XML)

    @router.post("/{job_id}/parameters", name=f"{kind}_post_job_parameters")
    async def post_job_parameters(job_id: str, params: RequestParams, jobs: Jobs, caller: CurrentCaller,
                                  base: BaseUrl, settings: AppSettings) -> Response:
        job = await load(jobs, job_id, caller)
        files = await keep(params, settings)
        await jobs.set_parameters(job, UwsParams(params.values).job_parameters())
        if files:
            await asyncio.to_thread(_store_files, jobs.results, job.job_id, files)
        return _see_other(job_url(base, job_id))

    @router.get("/{job_id}/results", name=f"{kind}_get_job_results")
    async def get_job_results(job_id: str, jobs: Jobs, caller: CurrentCaller, base: BaseUrl) -> Response:
        job = await load(jobs, job_id, caller)
        results = await jobs.job_results(job)
        return Response(xml.results_xml(results, job_url(base, job_id)), media_type=XML)

    @router.get("/{job_id}/results/{result_id}", name=f"{kind}_get_job_result")
    async def get_job_result(job_id: str, result_id: str, jobs: Jobs, caller: CurrentCaller) -> Response:
        job = await load(jobs, job_id, caller)
        result = await jobs.result(job, result_id)
        return result_response(jobs.results, result)

    return router


def result_response(store: ResultStore, result: JobResult) -> Response:
    """A result's bytes with its media type and length: a file response (ranges, sendfile) from a
    local store, else streamed from the fsspec store in chunks (the next read while the last is sent)."""
    media_type = result.mime_type or "application/octet-stream"
    if store.local:
        return FileResponse(store.path(result.location), media_type=media_type)
    headers = {"Content-Length": str(result.size)} if result.size is not None else {}
    return StreamingResponse(read_ahead(store.read(result.location)), media_type=media_type,
                             headers=headers)


async def _change_phase(jobs: JobService, job: Job, phase: str | None) -> Job:
    if phase == "RUN":
        return await jobs.run(job)
    if phase == "ABORT":
        return await jobs.abort(job)
    return job
