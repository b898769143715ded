"""Quotas and fairness: limits per identity class (anonymous, authenticated, groups), per client.

A *client* is an authenticated user (by name) or an anonymous caller (by address, as the server
sees it: behind a proxy, let uvicorn take it from ``X-Forwarded-For``, docs/operations.md). Its
*class* picks the limits (:class:`app.settings.QuotaLimits`): ``VLKB_QUOTA_ANONYMOUS``,
``VLKB_QUOTA_AUTHENTICATED``, or ``VLKB_QUOTA_GROUPS`` for a user in a listed group.

- :func:`query_quota` (the sync query routes): synchronous queries running at once, and queries
  per sliding window; the slot is held until the answer has been streamed (a request-scoped
  dependency with ``yield`` ends after the response is sent), or the client has gone.
- :func:`job_quota` (the UWS job lists): at job creation, the window again and the client's
  QUEUED + EXECUTING jobs (read from ``vlkb.jobs``, so right over every process and worker);
  and at ``PHASE=RUN`` of an existing job (``POST {job}`` or ``POST {job}/phase``) the active
  jobs again, so PENDING jobs created in advance cannot all be started at once.
- the ViaLactea bases have the same two dependencies (``app/routers/vialactea.py``), with its
  legacy ``vlkb_search``/``vlkb_cutout``/``vlkb_merge`` counted as queries.
- :func:`caller_settings`: the settings as they apply to the caller, with MAXREC, upload size and
  execution duration lowered to the class's limits; routes read these through
  ``app.deps.AppSettings``, and ``/tap/capabilities`` shows them (TAPRegExt ``outputLimit``,
  ``uploadLimit``, ``executionDuration`` of the caller's class).

Over a limit the answer is :class:`vo.errors.QuotaError`: 429 with ``Retry-After`` and a DALI error
document. The running counts and windows live in this process's memory (:class:`QuotaState`), or,
with ``VLKB_QUOTA_REDIS_URL``, in Redis (:class:`RedisQuotas`), shared by every server process and
machine, so a client gets its limit once however many processes answer it. Job counts come from
the database and are exact everywhere.
"""

from __future__ import annotations

import math
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

from fastapi import Request
from starlette.applications import Starlette

from app.access import CurrentCaller
from app.params import RequestParams
from app.settings import QuotaLimits, Settings
from db.ops_stats import active_jobs
from vo.caller import Caller
from vo.errors import QuotaError

__all__ = ["IdentityClass", "QuotaState", "RedisQuotas", "caller_settings", "job_quota", "limits_for",
           "query_paths", "query_quota", "quota_store"]

IdentityClass = Literal["anonymous", "authenticated", "group"]

#: the routes of the sync-query routers that run queries (their VOSI routes are not limited)
_QUERY_SUFFIXES = ("/sync", "/query", "/merge", "/vlkb_search", "/vlkb_cutout", "/vlkb_merge")
#: the UWS routes whose PHASE=RUN starts an existing job
_RUN_ROUTES = ("_post_job", "_post_job_phase")
#: seconds a client over its concurrent-query limit is told to wait: one typical query
_CONCURRENT_RETRY = 2
#: seconds a client over its active-jobs limit is told to wait before creating another
_JOBS_RETRY = 10


def _most_generous(limits: list[QuotaLimits]) -> QuotaLimits:
    """Per key, the largest limit of ``limits`` (a missing one, no limit, is the largest)."""
    merged: dict[str, int | None] = {}
    for name in QuotaLimits.model_fields:
        got = [getattr(lim, name) for lim in limits]
        merged[name] = None if any(v is None for v in got) else max(v for v in got if v is not None)
    return QuotaLimits(**merged)


def limits_for(settings: Settings, caller: Caller) -> tuple[IdentityClass, QuotaLimits]:
    """The identity class of ``caller`` and its limits."""
    if caller.user is None:
        return "anonymous", settings.quota_anonymous
    chosen = [settings.quota_groups[g] for g in caller.groups if g in settings.quota_groups]
    if not chosen:
        return "authenticated", settings.quota_authenticated
    return "group", _most_generous(chosen)


def _lowered(value: int, limit: int | None) -> int:
    return value if limit is None else min(value, limit)


def _class_settings(settings: Settings, limits: QuotaLimits) -> Settings:
    return settings.model_copy(update={
        "maxrec_limit": _lowered(settings.maxrec_limit, limits.maxrec),
        "maxrec_default": _lowered(settings.maxrec_default, limits.maxrec),
        "upload_max_bytes": _lowered(settings.upload_max_bytes, limits.upload_bytes),
        "execution_duration": _lowered(settings.execution_duration, limits.execution_duration),
    })


def _window_error(limit: int, window: float, retry: int) -> QuotaError:
    retry = max(1, retry)
    return QuotaError(f"over the quota of {limit} queries per {window:g} s of this client; retry in {retry} s", retry)


def _concurrent_error(running: int) -> QuotaError:
    return QuotaError(f"this client already runs {running} synchronous queries, its quota; "
                      f"retry when one has ended", _CONCURRENT_RETRY)


@dataclass
class QuotaState:
    """This process's running counts and windows, by client key, and the settings of each class."""

    running: dict[str, int] = field(default_factory=dict)
    windows: dict[str, deque[float]] = field(default_factory=dict)
    settings: dict[QuotaLimits, Settings] = field(default_factory=dict)

    async def admit(self, key: str, limits: QuotaLimits, window: float) -> None:
        """Count one more query of ``key`` in the window, or refuse it."""
        if limits.queries_per_window is None:
            return
        now = time.monotonic()
        times = self.windows.setdefault(key, deque())
        while times and times[0] <= now - window:
            times.popleft()
        if len(times) >= limits.queries_per_window:
            raise _window_error(limits.queries_per_window, window, math.ceil(times[0] + window - now))
        times.append(now)

    async def refusal(self, key: str, limits: QuotaLimits, window: float) -> QuotaError | None:
        """What :func:`query_quota` would answer ``key`` now, without counting anything: the early
        refusal of a flood (app/quota_gate.py)."""
        running = self.running.get(key, 0)
        if limits.sync_concurrent is not None and running >= limits.sync_concurrent:
            return _concurrent_error(running)
        times = self.windows.get(key)
        if limits.queries_per_window is None or times is None:
            return None
        now = time.monotonic()
        while times and times[0] <= now - window:
            times.popleft()
        if len(times) < limits.queries_per_window:
            return None
        return _window_error(limits.queries_per_window, window, math.ceil(times[0] + window - now))

    async def acquire(self, key: str, limit: int) -> None:
        """Take one of ``key``'s ``limit`` running-query slots, or refuse it."""
        running = self.running.get(key, 0)
        if running >= limit:
            raise _concurrent_error(running)
        self.running[key] = running + 1

    async def release(self, key: str) -> None:
        left = self.running[key] - 1
        if left:
            self.running[key] = left
        else:
            del self.running[key]

    def prune(self, key: str, window: float) -> None:
        """Forget ``key``'s window once it is empty, so idle clients cost no memory."""
        times = self.windows.get(key)
        if times is not None and (not times or times[-1] <= time.monotonic() - window):
            del self.windows[key]


#: a window: drop the stamps older than the window, refuse at the limit (answering the oldest stamp), else add one.
#: Redis's own clock (TIME), so processes on several machines agree.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local window, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= limit then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, tostring(tonumber(first[2]) + window - now)}
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('EXPIRE', KEYS[1], math.ceil(window) + 1)
return {1, '0'}
"""
#: a running count: one more unless at the limit; expires so a process killed mid-query cannot leak a slot forever
_ACQUIRE = """
local n = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
if n > tonumber(ARGV[1]) then
  redis.call('DECR', KEYS[1])
  return n - 1
end
return 0
"""


#: what _ADMIT and _ACQUIRE would answer, changing nothing: {running, queries in the window, seconds to the
#: oldest one's end}
_PEEK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local window = tonumber(ARGV[1])
local running = tonumber(redis.call('GET', KEYS[1]) or '0')
local n = redis.call('ZCOUNT', KEYS[2], '(' .. (now - window), '+inf')
local first = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. (now - window), '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
local retry = '0'
if first[2] then retry = tostring(tonumber(first[2]) + window - now) end
return {running, n, retry}
"""


class RedisQuotas:
    """The counts and windows of every process, in Redis (``VLKB_QUOTA_REDIS_URL``)."""

    def __init__(self, url: str, ttl: int) -> None:
        import redis.asyncio

        self.redis = redis.asyncio.Redis.from_url(url)
        self.ttl = ttl
        self._admit = self.redis.register_script(_ADMIT)
        self._acquire = self.redis.register_script(_ACQUIRE)
        self._peek = self.redis.register_script(_PEEK)

    async def refusal(self, key: str, limits: QuotaLimits, window: float) -> QuotaError | None:
        """What :meth:`acquire` and :meth:`admit` would answer ``key`` now, changing nothing (one round trip)."""
        running, queries, retry = await self._peek(keys=[f"vlkb:quota:running:{key}", f"vlkb:quota:window:{key}"],
                                                   args=[window])
        if limits.sync_concurrent is not None and int(running) >= limits.sync_concurrent:
            return _concurrent_error(int(running))
        if limits.queries_per_window is not None and int(queries) >= limits.queries_per_window:
            return _window_error(limits.queries_per_window, window, math.ceil(float(retry)))
        return None

    async def admit(self, key: str, limits: QuotaLimits, window: float) -> None:
        if limits.queries_per_window is None:
            return
        ok, retry = await self._admit(keys=[f"vlkb:quota:window:{key}"],
                                      args=[window, limits.queries_per_window, secrets.token_hex(8)])
        if not int(ok):
            raise _window_error(limits.queries_per_window, window, math.ceil(float(retry)))

    async def acquire(self, key: str, limit: int) -> None:
        running = int(await self._acquire(keys=[f"vlkb:quota:running:{key}"], args=[limit, self.ttl]))
        if running:
            raise _concurrent_error(running)

    async def release(self, key: str) -> None:
        await self.redis.decr(f"vlkb:quota:running:{key}")


def quota_store(app: Starlette) -> QuotaState | RedisQuotas:
    """Where ``app`` keeps its counts and windows: Redis (``VLKB_QUOTA_REDIS_URL``) or this process's memory."""
    settings: Settings = app.state.settings
    if settings.quota_redis_url is None:
        return _memory(app)
    shared: RedisQuotas | None = getattr(app.state, "redis_quotas", None)
    if shared is None:
        # a slot outlives no query: the longest a sync query may run, plus a margin
        shared = app.state.redis_quotas = RedisQuotas(settings.quota_redis_url.get_secret_value(),
                                                      int(settings.sync_timeout) + 60)
    return shared


def _memory(app: Starlette) -> QuotaState:
    state: QuotaState | None = getattr(app.state, "quotas", None)
    if state is None:
        state = app.state.quotas = QuotaState()
    return state


def query_paths(app: Starlette) -> set[tuple[str, str]]:
    """The methods and exact paths on which :func:`query_quota` has run in this process: the routes it
    limits, learnt from the requests themselves (whatever the router's internals)."""
    paths: set[tuple[str, str]] | None = getattr(app.state, "quota_paths", None)
    if paths is None:
        paths = app.state.quota_paths = set()
    return paths


def _client_key(request: Request, caller: Caller) -> str:
    if caller.user is not None:
        return f"user:{caller.user}"
    return f"addr:{request.client.host if request.client else 'unknown'}"


async def caller_settings(request: Request) -> Settings:
    """The service's settings as they apply to the caller of ``request`` (its class's lowered limits);
    a dependency (``app.deps.AppSettings``), async so that FastAPI calls it without a thread."""
    settings: Settings = request.app.state.settings
    caller: Caller | None = getattr(request.state, "identity", None)
    if caller is None:
        return settings
    _, limits = limits_for(settings, caller)
    if limits.maxrec is None and limits.upload_bytes is None and limits.execution_duration is None:
        return settings
    cache = _memory(request.app).settings
    if limits not in cache:
        cache[limits] = _class_settings(settings, limits)
    return cache[limits]


async def query_quota(request: Request, caller: CurrentCaller) -> AsyncIterator[None]:
    """Admit a synchronous query under the caller's quotas, holding its slot until the answer is sent."""
    route = getattr(request.scope.get("route"), "path", "")
    if not route.endswith(_QUERY_SUFFIXES):
        yield
        return
    if "{" not in route:  # an exact path: from now on, app/quota_gate.py may refuse an anonymous flood on it
        query_paths(request.app).add((request.method, request.scope["path"]))
    settings: Settings = request.app.state.settings
    _, limits = limits_for(settings, caller)
    if limits.sync_concurrent is None and limits.queries_per_window is None:
        yield
        return
    key, store = _client_key(request, caller), quota_store(request.app)
    if limits.sync_concurrent is not None:
        await store.acquire(key, limits.sync_concurrent)
    try:
        await store.admit(key, limits, settings.quota_window)
        yield
    finally:
        if limits.sync_concurrent is not None:
            await store.release(key)
        if isinstance(store, QuotaState):
            store.prune(key, settings.quota_window)


async def job_quota(request: Request, caller: CurrentCaller, params: RequestParams) -> None:
    """At job creation (POST to a UWS job list), the caller's window and active-jobs quotas; at
    PHASE=RUN of an existing job, the active-jobs quota."""
    if request.method != "POST":
        return
    name = str(getattr(request.scope.get("route"), "name", ""))
    creating = name.endswith("_create_job")
    running = name.endswith(_RUN_ROUTES) and [v.upper() for v in params.values.get("PHASE", [])] == ["RUN"]
    if not creating and not running:
        return
    settings: Settings = request.app.state.settings
    _, limits = limits_for(settings, caller)
    if limits.jobs_active is not None:
        active = await active_jobs(request.app.state.pool, caller.user)
        if active >= limits.jobs_active:
            raise QuotaError(f"{active} jobs of this owner are queued or executing, the quota is "
                             f"{limits.jobs_active}; {'create' if creating else 'run'} more when one has ended",
                             _JOBS_RETRY)
    if not creating:
        return
    key, store = _client_key(request, caller), quota_store(request.app)
    await store.admit(key, limits, settings.quota_window)
    if isinstance(store, QuotaState):
        store.prune(key, settings.quota_window)
