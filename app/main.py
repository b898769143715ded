"""The application factory: settings in, a FastAPI app out.

Nothing is built at import time. The lifespan opens the database pool and puts it on
``app.state``; shutdown closes it, so Ctrl-C or SIGTERM ends cleanly.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import structlog
from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from app.access import current_identity
from app.auth import JwksKeys, TokenVerifier
from app.database import database_url
from app.errors import install_error_handlers
from app.jobs import start_jobs, stop_jobs
from app.lifecycle import RequestLifecycle
from app.logging import configure_logging
from app.metrics import RequestMetrics, process_stopped
from app.params import checked_path
from app.pool import ServicePool
from app.quota_gate import QuotaGate
from app.quotas import job_quota, query_quota
from app.request_context import RequestContext
from app.routers import (
    datalink,
    examples,
    hips,
    home,
    moc,
    oai,
    sedfit,
    sfind,
    sia,
    soda,
    soda_async,
    stamps,
    tap,
    tap_async,
    user_tables,
    vialactea,
    vosi,
)
from app.settings import Settings
from vo.lookups import RecentLookups
from vo.tap import published_catalog
from vo.votable.allocator import tune_allocator

__all__ = ["create_app"]

log = structlog.get_logger("vlkb")


def build_verifier(settings: Settings, http: httpx.AsyncClient) -> TokenVerifier | None:
    """The token verifier of ``settings``: the configured issuer's, the development one, or none."""
    if settings.oidc_issuer:
        keys = JwksKeys(settings.oidc_issuer, http, refresh=settings.oidc_jwks_refresh,
                        max_age=settings.oidc_jwks_max_age)
        log.info("bearer tokens accepted", issuer=settings.oidc_issuer, audience=settings.oidc_audience)
        return TokenVerifier(
            settings.oidc_issuer, keys, audience=settings.oidc_audience, algorithms=settings.oidc_algorithms,
            groups_claim=settings.oidc_groups_claim, user_claim=settings.oidc_user_claim,
            leeway=settings.oidc_leeway,
        )
    if settings.dev_issuer:
        from app.dev_issuer import dev_verifier

        log.warning("DEVELOPMENT TOKEN ISSUER ENABLED: tokens minted by `vlkb dev-token` are accepted. "
                    "This is the embedded demo default; configure VLKB_OIDC_ISSUER for any real deployment",
                    home=str(settings.home))
        return dev_verifier(settings)
    log.info("no identity provider configured: every caller is anonymous")
    return None


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the vlkb application for ``settings`` (default: from the environment)."""
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tune_allocator()  # process-wide malloc settings for streaming (vo/votable/allocator.py)
        # a bounded queue: past it, or past the wait, a request is answered 503 busy (app/pool.py)
        pool = ServicePool(
            database_url(settings),
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            max_waiting=settings.db_pool_queue,
            timeout=settings.db_pool_wait,
            open=False,
            kwargs={"application_name": "vlkb"},
        )
        # wait=False: the service starts even when the database is down, and says so in
        # /tap/availability and /health instead of refusing to start.
        await pool.open(wait=False)
        app.state.pool = pool
        await start_jobs(app, settings, pool)
        lookups = RecentLookups(settings.dataset_lookup_ttl, conninfo=database_url(settings))
        await lookups.start()
        app.state.dataset_lookups = lookups
        http = httpx.AsyncClient(follow_redirects=True)
        app.state.verifier = build_verifier(settings, http)
        if not settings.base_url and not settings.allowed_hosts and settings.host in ("0.0.0.0", "::", ""):
            log.warning("listening on every address with neither VLKB_BASE_URL nor VLKB_ALLOWED_HOSTS: URLs "
                        "written for remote clients will name the listening address", url=settings.public_url)
        # The ADQL catalogue, and with it every schema declaration, is built now rather than by the
        # first requests: a worker process of several (app/serving.py) starts without them, and its
        # first requests, arriving together, each parsed the declarations at once (measured: a
        # burst of 8 cones took 1 s instead of 0.08 s on a fresh 2-process service).
        await asyncio.to_thread(published_catalog)
        # What is alive once started (modules, schemas, the app) leaves the collector's view, so a
        # full collection scans only what requests made: such a pause stops every thread, and the
        # translation of a long ADQL query triggers several (0.3-0.5 s each on a loaded machine).
        gc.collect()
        gc.freeze()
        log.info("service started", embedded=settings.embedded)
        try:
            yield
        finally:
            await stop_jobs(app)
            await lookups.close()
            await http.aclose()
            await pool.close()
            process_stopped()  # several worker processes: its live gauges leave the sums (app/metrics.py)
            log.info("service stopped")

    app = FastAPI(
        title=settings.service_title,
        version="0.1.0",
        lifespan=lifespan,
        # the API docs are routes of ours below, so they check the caller like every other route
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # every route knows its caller: a bad token is a 401 wherever it is sent, and a good one is
        # acknowledged with X-VO-Authenticated on every response (see bind_request)
        dependencies=[Depends(current_identity), Depends(checked_path)],
    )
    app.state.settings = settings
    app.state.dataset_lookups = None  # started with the database (lifespan)
    install_error_handlers(app)

    # the request id and log context; X-VO-Authenticated on an authenticated caller's answers (AuthVO 4.3)
    app.add_middleware(RequestContext)
    app.add_middleware(RequestMetrics)  # counts and logs each request once its answer is complete
    # outermost of ours: it sees the client leave whatever the inner layers are doing
    app.add_middleware(RequestLifecycle)
    # outside even that: an anonymous flood's 429s cost no routing, identity or logging (app/quota_gate.py)
    app.add_middleware(QuotaGate)
    # GET /metrics (Prometheus) is answered by RequestMetrics, with its own access rule (app/metrics.py)

    @app.get("/api/openapi.json", include_in_schema=False)
    async def get_openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/api/docs", include_in_schema=False)
    async def get_api_docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/api/openapi.json", title=f"{settings.service_title}: API")

    # Routes are matched in the order they are included, a regular expression each (about 2 us a
    # route; a UWS router holds 18), so the routers that answer most requests come first: the data
    # endpoints, the portal's HiPS tiles and MOCs, the ViaLactea client's bases. Matching a SODA
    # cut went from 94 us to 5, a HiPS tile from 235 to 25, a ViaLactea cut from 277 to 79
    # (python -m bench.routes). Every router has path prefixes of its own (the ViaLactea path may
    # not take one of the service's, SERVICE_BASES in app/settings.py), so the order changes no match.
    app.include_router(soda.router, dependencies=[Depends(query_quota)])
    app.include_router(sia.router, dependencies=[Depends(query_quota)])
    app.include_router(tap.router, dependencies=[Depends(query_quota)])
    app.include_router(datalink.router)
    app.include_router(hips.router)
    app.include_router(moc.router)
    app.include_router(home.router)
    app.include_router(vosi.router)
    vialactea.install(app, settings)
    app.include_router(tap_async.router, dependencies=[Depends(job_quota)])
    app.include_router(user_tables.router, dependencies=[Depends(query_quota)])
    app.include_router(user_tables.update_router, dependencies=[Depends(job_quota)])
    app.include_router(examples.router)
    app.include_router(soda_async.router, dependencies=[Depends(job_quota)])
    app.include_router(stamps.router, dependencies=[Depends(query_quota)])
    app.include_router(stamps.async_router, dependencies=[Depends(job_quota)])
    app.include_router(sedfit.router)
    app.include_router(sfind.router, dependencies=[Depends(job_quota)])
    app.include_router(oai.router)
    if settings.dev_issuer:  # development only: the dev issuer's login (never with a real issuer or database)
        from app.routers import dev_login

        app.include_router(dev_login.router)
    return app
