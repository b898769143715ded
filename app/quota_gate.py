"""The early refusal of an anonymous flood: a 429 answered before routing, identity and logging.

:func:`app.quotas.query_quota` refuses a client over its query quota, but only once the request has
been routed, its identity checked, its parameters read, the error rendered and the request logged,
so a client repeating refused queries in a tight loop still costs the service most of a request
each time, and the other callers wait behind it. :class:`QuotaGate`, a pure ASGI middleware
outside every other one of ours, answers the common case of a flood early:

- only **anonymous** requests (no ``Authorization`` header at all: a token is never read here, an
  authenticated caller always takes the full path) to the **query routes under**
  ``query_quota`` (exact paths, learnt by ``query_quota`` as it runs: :func:`app.quotas.query_paths`;
  a client's first queries always take the full path, which counts them);
- it asks the quota store (this process's memory, or Redis with ``VLKB_QUOTA_REDIS_URL``) what
  ``query_quota`` would answer now, counting nothing (:meth:`QuotaState.refusal`,
  :meth:`RedisQuotas.refusal`); a request it would admit goes on untouched, and ``query_quota``
  counts it as before;
- a refusal is the same answer as the full path's (429, ``Retry-After``, the DALI error document
  with the same text, rendered once per distinct text), after the request body has been read
  (so the connection stays usable: a refused client keeps its keep-alive connection rather
  than reconnecting) and after ``VLKB_QUOTA_REFUSAL_DELAY`` seconds (an ``asyncio`` sleep, so a
  client looping on one connection is held to a few requests a second at no cost to the service);
- it is counted once in the request metrics (route, status 429, latency, bytes), and logged at
  most once per client every :data:`_LOG_EVERY` seconds with the number refused since.
"""

from __future__ import annotations

import asyncio
import time
from functools import lru_cache

import structlog
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from app.metrics import BYTES_SENT, LATENCY, REQUESTS
from app.quotas import query_paths, quota_store
from app.settings import Settings
from vo.errors import QuotaError
from vo.votable.errors import error_document

__all__ = ["QuotaGate"]

log = structlog.get_logger("vlkb.requests")

#: seconds between two log lines about one client's early refusals
_LOG_EVERY = 10.0
#: clients whose refusals are being tallied for the log, at most (older tallies are dropped)
_LOG_CLIENTS = 1024
_METHODS = frozenset({"GET", "POST"})


@lru_cache(maxsize=256)
def _body(message: str) -> bytes:
    """The DALI error document of a refusal (its text varies only with the seconds to wait)."""
    return error_document(message)


def _anonymous(scope: Scope) -> bool:
    """No credentials of any kind and no identity set by an outer layer (the ViaLactea Basic accounts,
    app/routers/vialactea.py): the token is never read here. A client sending a header of another
    scheme takes the full path, which refuses it just the same."""
    if (scope.get("state") or {}).get("identity") is not None:
        return False
    return all(name != b"authorization" for name, _ in scope["headers"])


class QuotaGate:
    """Answers the queries of an anonymous client already over its quota with a 429, before any other work."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._tally: dict[str, tuple[float, int]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _METHODS:
            await self.app(scope, receive, send)
            return
        service: Starlette = scope["app"]
        settings: Settings = service.state.settings
        limits = settings.quota_anonymous
        unlimited = limits.sync_concurrent is None and limits.queries_per_window is None
        if unlimited or (scope["method"], scope["path"]) not in query_paths(service) or not _anonymous(scope):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        client = scope.get("client")
        key = f"addr:{client[0] if client else 'unknown'}"
        try:
            refusal = await quota_store(service).refusal(key, limits, settings.quota_window)
        except Exception as exc:  # Redis unreachable: the full path decides (and says so)
            log.warning("quota store not read before routing", error=type(exc).__name__)
            refusal = None
        if refusal is None:
            await self.app(scope, receive, send)
            return
        await self._refuse(scope, receive, send, refusal, settings.quota_refusal_delay)
        seconds = time.perf_counter() - start
        REQUESTS.labels(scope["method"], scope["path"], "429").inc()
        LATENCY.labels(scope["method"], scope["path"]).observe(seconds)
        self._log(key, scope["path"], refusal)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, refusal: QuotaError, delay: float) -> None:
        while True:  # the body: read, so the connection can serve the client's next request
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        if delay:
            await asyncio.sleep(delay)
        body = _body(f"{refusal.code}: {refusal.message}")
        headers = [(b"content-type", b"application/x-votable+xml"), (b"content-length", str(len(body)).encode())]
        headers += [(k.lower().encode(), v.encode()) for k, v in refusal.headers]
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        BYTES_SENT.labels(scope["path"]).inc(len(body))

    def _log(self, key: str, path: str, refusal: QuotaError) -> None:
        now = time.monotonic()
        last, count = self._tally.get(key, (0.0, 0))
        if now - last < _LOG_EVERY:
            self._tally[key] = (last, count + 1)
            return
        if len(self._tally) >= _LOG_CLIENTS:
            self._tally.clear()
        self._tally[key] = (now, 0)
        log.info("requests refused before routing", client=key, path=path, status=429,
                 refused_since_last=count + 1, error=refusal.message)
