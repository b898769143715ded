"""The job engine of a running service, and what a ``vlkb worker`` needs to run the same jobs.

``start_jobs`` is called by the lifespan in ``app/main.py``: it builds the store, the results
store and the executor chosen by ``VLKB_EXECUTOR``, and puts the :class:`JobService` on
``app.state.jobs``; ``stop_jobs`` stops the executor. Runners are registered by kind in
:func:`job_runners`, and the functions of the parts a job fans out (``vo/uws/parts.py``) by name in
:func:`job_parts`; ``vlkb worker`` uses both too, so every process runs the same code.
"""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool

from app.database import database_url
from app.routers.tap import fetch_policy, upload_limits
from app.routers.user_tables import limits as user_table_limits
from app.settings import Settings
from db.jobs import JobStore
from vo.jobs.mcutout import run_mcutout
from vo.jobs.sfind import TILE_PART, run_sfind, search_part
from vo.jobs.soda import run_soda
from vo.jobs.stamps import CHUNK_PART, make_chunk, run_stamps
from vo.jobs.table_update import run_table_update
from vo.jobs.tap import run_tap
from vo.uws.context import PartFunction, Runner
from vo.uws.executor import Executor, LocalExecutor
from vo.uws.phase_watch import PhaseWatch
from vo.uws.results import ResultStore
from vo.uws.service import JobService

__all__ = ["broker_url", "job_parts", "job_runners", "results_store", "start_jobs", "stop_jobs"]


def job_runners(settings: Settings) -> dict[str, Runner]:
    """The runner of each job kind."""
    # SAVE_AS of sfind and stamps jobs: the quota of PUT /tap/tables
    table_limits = user_table_limits(settings)
    return {
        "tap": partial(run_tap, maxrec_default=settings.maxrec_default, maxrec_limit=settings.maxrec_limit,
                       upload_limits=upload_limits(settings), fetch_policy=fetch_policy(settings),
                       max_query_length=settings.adql_max_length, base_url=settings.public_url),
        "soda": partial(run_soda, max_cuts=settings.soda_max_cuts, max_voxels=settings.merge_max_voxels),
        "merge": partial(run_soda, max_cuts=settings.soda_max_cuts, max_voxels=settings.merge_max_voxels,
                         merge=True),
        "mcutout": partial(run_mcutout, max_cuts=settings.soda_max_cuts),
        # persistent user tables: indexes and sharing (app/routers/user_tables.py)
        "table_update": run_table_update,
        # the ViaLactea legacy vlkb_cutout / vlkb_merge: SODA jobs (MERGE read from the parameters)
        "vlkb_legacy": partial(run_soda, max_cuts=settings.soda_max_cuts, max_voxels=settings.merge_max_voxels),
        "sfind": partial(run_sfind, max_tiles=settings.sfind_max_tiles, max_pixels=settings.sfind_max_pixels,
                         table_limits=table_limits),
        "stamps": partial(run_stamps, max_sources=settings.stamps_max_sources, max_radius=settings.stamps_max_radius,
                          max_voxels=settings.merge_max_voxels, list_limit=settings.stamps_list_limit,
                          max_query_length=settings.adql_max_length, table_limits=table_limits),
    }


def job_parts() -> dict[str, PartFunction]:
    """The part functions by name: a runner's ``ctx.fan_out(name, ...)`` runs them in any process."""
    return {TILE_PART: search_part, CHUNK_PART: make_chunk}


def results_store(settings: Settings) -> ResultStore:
    return ResultStore(settings.results_root)


def broker_url(settings: Settings) -> str:
    from vo.uws.celery_executor import DEFAULT_BROKER

    return settings.broker_url.get_secret_value() if settings.broker_url is not None else DEFAULT_BROKER


async def start_jobs(app: FastAPI, settings: Settings, pool: AsyncConnectionPool) -> JobService:
    """Build the job engine, start its executor, and put the service on ``app.state.jobs``."""
    store = JobStore(pool)
    results = results_store(settings)
    runners = job_runners(settings)
    executor: Executor
    if settings.executor == "celery":
        from vo.uws.celery_executor import CeleryExecutor  # celery is imported only when used

        executor = CeleryExecutor(store, results, list(runners), broker_url=broker_url(settings),
                                  conninfo=database_url(settings), heartbeat=settings.job_heartbeat)
    else:
        executor = LocalExecutor(store, results, runners, conninfo=database_url(settings),
                                 concurrency=settings.local_concurrency, per_owner=settings.jobs_per_owner,
                                 heartbeat=settings.job_heartbeat, parts=job_parts())
    service = JobService(store, executor, results, execution_duration=settings.execution_duration,
                         destruction_days=settings.destruction_days, watch=PhaseWatch(database_url(settings)))
    await executor.start()
    app.state.jobs = service
    return service


async def stop_jobs(app: FastAPI) -> None:
    service: JobService | None = getattr(app.state, "jobs", None)
    if service is not None:
        await service.close()
        await service.executor.stop()
