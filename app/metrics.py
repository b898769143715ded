"""Prometheus metrics (``GET /metrics``) and the one log line of each request.

What is counted where:

- **Requests**, by method, route template (``/tap/async/{job_id}``, never the raw path, so the
  label set stays small) and status, with a latency histogram and the bytes sent: by
  :class:`RequestMetrics`, a pure ASGI middleware that sees the whole answer, streamed or not
  (bytes sent on ``/soda/sync`` are the cutout bytes sent). The same middleware writes one log
  line per request (``request done``: method, route, status, seconds, bytes, request_id, user),
  which with ``VLKB_LOG_JSON=true`` is one JSON line per request.
- **Database pool**: connections in use and requests waiting for one, kept by
  :class:`app.pool.ServicePool` as it hands connections out.
- **Work reported by the core** through :mod:`vo.observe`: rows encoded into results
  (``vlkb_rows_streamed_total``), and object-storage reads of cutouts: bytes fetched from the
  store against the bytes of the slabs wanted, so the over-read (at most 1.2x) and the bytes
  read against the bytes sent (``vlkb_http_response_bytes_total{route="/soda/sync"}``) can be
  watched.
- **Jobs** by kind and phase, the queue depth (QUEUED jobs, what a worker autoscaler follows)
  and the run time of finished jobs: read from ``vlkb.jobs`` when scraped
  (:mod:`db.ops_stats`), so they are right whichever process or machine ran the jobs.

Who may read ``/metrics``: clients from ``VLKB_METRICS_NETWORKS`` (loopback by default) or with
``Authorization: Bearer <VLKB_METRICS_TOKEN>``; others get a 403 DALI error. The endpoint is
answered by :class:`RequestMetrics` itself, before routing, because the service's identity
check (a global dependency) would take the metrics token for an OIDC token and refuse it.

Several server processes: when ``PROMETHEUS_MULTIPROC_DIR`` is set before this module is
first imported (``vlkb serve`` sets it to its own ``VLKB_HOME/run/metrics/<pid>`` and removes
those of services that are gone), prometheus_client's multiprocess mode keeps each process's values in files there and a
scrape of any process sums them. The metric objects are module globals, as prometheus_client
intends: a process has one set of counters, whatever number of apps it builds.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import secrets
import time
from typing import Any

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client import values as _values
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import votable_error
from db import ops_stats
from vo import observe

__all__ = ["JOB_DURATION_BUCKETS", "POOL_IN_USE", "POOL_WAITING", "RequestMetrics", "get_metrics",
           "multiprocess", "process_stopped", "serve_worker_metrics"]

log = structlog.get_logger("vlkb.requests")

#: the registry of this process's own metrics (single-process mode; multiprocess scrapes read the files)
_REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
#: seconds: async jobs run from under a second to the execution-duration limit
JOB_DURATION_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)

REQUESTS = Counter("vlkb_http_requests", "HTTP requests answered, by method, route template and status.",
                   ["method", "route", "status"], registry=_REGISTRY)
LATENCY = Histogram("vlkb_http_request_duration_seconds",
                    "Time from the request to the end of its answer (streaming included), seconds.",
                    ["method", "route"], buckets=_LATENCY_BUCKETS, registry=_REGISTRY)
BYTES_SENT = Counter("vlkb_http_response_bytes", "Bytes of response bodies sent, by route template "
                     "(rows streamed by /tap/sync, cutouts by /soda/sync, ...).", ["route"], registry=_REGISTRY)
POOL_IN_USE = Gauge("vlkb_db_pool_connections_in_use", "Database connections serving a request.",
                    registry=_REGISTRY, multiprocess_mode="livesum")
POOL_WAITING = Gauge("vlkb_db_pool_requests_waiting", "Requests waiting for a database connection.",
                     registry=_REGISTRY, multiprocess_mode="livesum")
STORAGE_FETCHED = Counter("vlkb_storage_bytes_fetched", "Bytes fetched from object storage by ranged reads "
                          "(cutouts of remote files), merged gaps included.", registry=_REGISTRY)
STORAGE_WANTED = Counter("vlkb_storage_bytes_wanted", "Bytes those ranged reads asked for (the slabs): "
                         "fetched / wanted is the over-read.", registry=_REGISTRY)

ROWS = Counter("vlkb_rows_streamed", "Rows encoded into query results (TAP sync and async, SIA, ViaLactea), "
               "counted in the process that encoded them.", registry=_REGISTRY)
_EVENTS = {"rows": ROWS, "storage_fetched": STORAGE_FETCHED, "storage_wanted": STORAGE_WANTED}


def _count(event: str, amount: int) -> None:
    counter = _EVENTS.get(event)
    if counter is not None:
        counter.inc(amount)


observe.subscribe(_count)


def serve_worker_metrics(port: int, host: str) -> None:
    """Serve this process's counters at ``http://host:port/metrics`` from a background thread: what a
    ``vlkb worker`` (no HTTP app of its own) did, for Prometheus to scrape (VLKB_WORKER_METRICS_PORT)."""
    start_http_server(port, addr=host, registry=_REGISTRY)


def multiprocess() -> bool:
    """Whether this process keeps its values in ``PROMETHEUS_MULTIPROC_DIR`` (decided when prometheus_client
    was first imported)."""
    return _values.ValueClass is not _values.MutexValue and bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def process_stopped() -> None:
    """Forget this process's live gauges (pool in use, waiting) in the multiprocess directory, so
    the sums a scrape gives count only the processes still serving (several ``vlkb serve`` workers)."""
    if multiprocess():
        from prometheus_client.multiprocess import mark_process_dead

        mark_process_dead(os.getpid())


def _route(scope: Scope) -> str:
    """The route template of a routed request, or a fixed label for anything unrouted (404s)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unrouted"


class RequestMetrics:
    """Counts each request (route, status, latency, bytes) and logs it once, when its answer is complete."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == "/metrics" and scope["method"] in ("GET", "HEAD"):
            scope["route"] = _METRICS_ROUTE  # the label of its requests
            app: ASGIApp = _answer_metrics
        else:
            app = self.app
        start = time.perf_counter()
        status = 500  # what the server answers if the app fails before starting its answer
        started = False
        sent = 0

        async def counting_send(message: Message) -> None:
            nonlocal status, sent, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await app(scope, receive, counting_send)
        except asyncio.CancelledError:
            if not started:
                status = 499  # the client left before an answer began (app/lifecycle.py cancelled the work)
            raise
        finally:
            seconds = time.perf_counter() - start
            route, method = _route(scope), scope["method"]
            REQUESTS.labels(method, route, str(status)).inc()
            LATENCY.labels(method, route).observe(seconds)
            BYTES_SENT.labels(route).inc(sent)
            state: dict[str, Any] = scope.get("state") or {}
            identity = state.get("identity")
            log.info("request done", method=method, path=scope["path"], route=route, status=status,
                     seconds=round(seconds, 4), bytes=sent, request_id=state.get("request_id"),
                     user=getattr(identity, "user", None))


class _JobCollector:
    """The job figures read from the database for one scrape."""

    def __init__(self, phases: list[tuple[str, str, int]], durations: list[ops_stats.DurationHistogram]) -> None:
        self.phases = phases
        self.durations = durations

    def collect(self) -> Any:
        jobs = GaugeMetricFamily("vlkb_jobs", "UWS jobs in vlkb.jobs, by kind and phase.", labels=["kind", "phase"])
        queued = 0
        for kind, phase, n in self.phases:
            jobs.add_metric([kind, phase], n)
            queued += n if phase == "QUEUED" else 0
        yield jobs
        yield GaugeMetricFamily("vlkb_jobs_queue_depth", "Jobs waiting to run (QUEUED), all kinds: what a "
                                "worker autoscaler follows.", value=queued)
        hist = HistogramMetricFamily(
            "vlkb_job_duration_seconds", "Run time (start to end) of the finished jobs still kept (until their "
            "destruction time), by kind and final phase.", labels=["kind", "phase"])
        finished = CounterMetricFamily("vlkb_jobs_finished", "Finished jobs still kept, by kind and final phase.",
                                       labels=["kind", "phase"])
        for h in self.durations:
            hist.add_metric([h.kind, h.phase], [(str(b), n) for b, n in h.buckets] + [("+Inf", h.count)],
                            sum_value=h.total)
            finished.add_metric([h.kind, h.phase], h.count)
        yield hist
        yield finished


class _Route:
    path = "/metrics"


_METRICS_ROUTE = _Route()


def metrics_allowed(request: Request) -> bool:
    """Whether the client may read ``/metrics``: from an allowed network, or with the metrics token."""
    settings = request.app.state.settings
    token = settings.metrics_token
    if token is not None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and secrets.compare_digest(given.strip().encode(),
                                                                 token.get_secret_value().encode()):
            return True
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in settings.metrics_networks)


async def _answer_metrics(scope: Scope, receive: Receive, send: Send) -> None:
    request = Request(scope, receive)
    if not metrics_allowed(request):
        log.info("metrics refused", client=request.client.host if request.client else None)
        response = votable_error("AuthorizationError: /metrics is open to the networks of VLKB_METRICS_NETWORKS "
                                 "or with the token of VLKB_METRICS_TOKEN", 403)
    else:
        response = await get_metrics(request)
    await response(scope, receive, send)


async def get_metrics(request: Request) -> Response:
    """``GET /metrics``: this process's (or all processes') counters and the job figures of the database."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess():
        MultiProcessCollector(registry)
    else:
        registry.register(_Forward(_REGISTRY))
    try:
        pool = request.app.state.pool
        phases = await ops_stats.job_phases(pool)
        durations = await ops_stats.job_durations(pool, JOB_DURATION_BUCKETS)
    except Exception as exc:  # the service's own figures are still worth a scrape when the database is down
        log.warning("metrics without job figures", error=type(exc).__name__)
    else:
        registry.register(_JobCollector(phases, durations))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class _Forward:
    """Collects another registry's metrics into the scrape's registry."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Any:
        return self.source.collect()
