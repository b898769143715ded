"""The job engine of a running service: store, results directory, executor and service.

``start_jobs`` is called by the lifespan in ``app/main.py`` and puts the :class:`JobService`
on ``app.state.jobs``; ``stop_jobs`` stops the executor. Runners are registered here by kind.
"""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool

from app.database import database_url
from app.settings import Settings
from db.jobs import JobStore
from vo.jobs.soda import run_soda
from vo.jobs.tap import run_tap
from vo.upload import UploadLimits
from vo.uws.executor import LocalExecutor
from vo.uws.results import ResultStore
from vo.uws.service import JobService

__all__ = ["start_jobs", "stop_jobs"]


async def start_jobs(app: FastAPI, settings: Settings, pool: AsyncConnectionPool) -> JobService:
    """Build the job engine, start its executor, and put the service on ``app.state.jobs``."""
    store = JobStore(pool)
    results = ResultStore(settings.home / "results")
    runners = {
        "tap": partial(run_tap, maxrec_default=settings.maxrec_default, maxrec_limit=settings.maxrec_limit,
                       upload_limits=UploadLimits(settings.upload_max_rows, settings.upload_max_bytes)),
        "soda": partial(run_soda, max_cuts=settings.soda_max_cuts, max_voxels=settings.merge_max_voxels),
        "merge": partial(run_soda, max_cuts=settings.soda_max_cuts, max_voxels=settings.merge_max_voxels,
                         merge=True),
    }
    executor = LocalExecutor(store, results, runners, conninfo=database_url(settings))
    service = JobService(store, executor, results, execution_duration=settings.execution_duration,
                         destruction_days=settings.destruction_days)
    await executor.start()
    app.state.jobs = service
    return service


async def stop_jobs(app: FastAPI) -> None:
    service: JobService | None = getattr(app.state, "jobs", None)
    if service is not None:
        await service.executor.stop()
