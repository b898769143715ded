"""FastAPI dependencies shared by the routers: settings, database pool, the service's base URL, recent lookups."""

from __future__ import annotations

from functools import cache
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from psycopg_pool import AsyncConnectionPool

from app.quotas import caller_settings
from app.settings import Settings
from vo.lookups import RecentLookups

__all__ = ["AppSettings", "DbPool", "Lookups", "base_url"]


# The dependencies here are ``async def`` although they never wait: FastAPI runs a plain ``def``
# dependency in its thread pool, a thread hop per request each (issue 16: measurable on a cone).


async def _pool(request: Request) -> AsyncConnectionPool:
    return request.app.state.pool


async def _lookups(request: Request) -> RecentLookups | None:
    return request.app.state.dataset_lookups


#: names every service answers to on its own machine
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
_WILDCARDS = frozenset({"", "0.0.0.0", "::"})


@cache
def _allowed(hosts: tuple[str, ...], listen_host: str) -> frozenset[str]:
    names = {h.strip().lower().rstrip(".") for h in hosts if h.strip()} | _LOOPBACK
    if listen_host not in _WILDCARDS:
        names.add(listen_host.lower().strip("[]"))
    return frozenset(names)


def _trusted_host(host: str, settings: Settings) -> bool:
    """Whether the ``Host`` header names this service: an allowed name, with no port or the listening one."""
    if any(c in host for c in "/?#@\\%\t "):  # only host[:port]: no userinfo, path or escapes
        return False
    try:
        parts = urlsplit(f"//{host}")
        name, port = (parts.hostname or "").rstrip("."), parts.port
    except ValueError:  # a malformed port, brackets, ...
        return False
    return name in _allowed(tuple(settings.allowed_hosts), settings.host) and port in (None, settings.port)


async def base_url(request: Request) -> str:
    """The public base URL, written into job locations, capabilities and access URLs (a dependency:
    async, so FastAPI calls it in the event loop instead of a thread).

    VLKB_BASE_URL when set (what a service behind a proxy must set). Else the scheme and host
    the client used, but only when that host is one this service answers to (loopback names,
    VLKB_HOST and VLKB_ALLOWED_HOSTS): a forged ``Host`` header must never become a URL the
    service hands out (a job Location a client then follows, with its token). Any other host
    gets the listening address, http://VLKB_HOST:VLKB_PORT.
    """
    settings: Settings = request.app.state.settings
    if settings.base_url:
        return settings.base_url.rstrip("/")
    host = request.headers.get("host", "")
    if host and _trusted_host(host, settings):
        return f"{request.url.scheme}://{host}{request.scope.get('root_path', '')}".rstrip("/")
    return settings.public_url


#: the settings as they apply to the caller (its quota class's MAXREC, upload and duration limits)
AppSettings = Annotated[Settings, Depends(caller_settings)]
DbPool = Annotated[AsyncConnectionPool, Depends(_pool)]
BaseUrl = Annotated[str, Depends(base_url)]
#: the datasets this process found for callers lately (vo/lookups.py; None before the lifespan starts)
Lookups = Annotated[RecentLookups | None, Depends(_lookups)]
