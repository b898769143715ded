"""The application factory: settings in, a FastAPI app out.

Nothing is built at import time. The lifespan opens the database pool and puts it on
``app.state``; shutdown closes it, so Ctrl-C or SIGTERM ends cleanly.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Request
from psycopg_pool import AsyncConnectionPool

from app.database import database_url
from app.errors import install_error_handlers
from app.jobs import start_jobs, stop_jobs
from app.logging import configure_logging
from app.routers import datalink, examples, home, sia, soda, soda_async, tap, tap_async, vosi
from app.settings import Settings
from vo.votable.allocator import tune_allocator

__all__ = ["create_app"]

log = structlog.get_logger("vlkb")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the vlkb application for ``settings`` (default: from the environment)."""
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tune_allocator()  # process-wide malloc settings for streaming (vo/votable/allocator.py)
        pool = AsyncConnectionPool(
            database_url(settings),
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            open=False,
            kwargs={"application_name": "vlkb"},
        )
        # wait=False: the service starts even when the database is down, and says so in
        # /tap/availability and /health instead of refusing to start.
        await pool.open(wait=False)
        app.state.pool = pool
        await start_jobs(app, settings, pool)
        log.info("service started", embedded=settings.embedded)
        try:
            yield
        finally:
            await stop_jobs(app)
            await pool.close()
            log.info("service stopped")

    app = FastAPI(
        title=settings.service_title,
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.settings = settings
    install_error_handlers(app)

    @app.middleware("http")
    async def bind_request(request: Request, call_next):  # type: ignore[no-untyped-def]
        request.state.request_id = uuid.uuid4().hex[:12]
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request.state.request_id, path=request.url.path)
        return await call_next(request)

    app.include_router(home.router)
    app.include_router(vosi.router)
    app.include_router(tap.router)
    app.include_router(tap_async.router)
    app.include_router(examples.router)
    app.include_router(sia.router)
    app.include_router(datalink.router)
    app.include_router(soda.router)
    app.include_router(soda_async.router)
    return app
