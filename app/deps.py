"""FastAPI dependencies shared by the routers: settings, database pool."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from psycopg_pool import AsyncConnectionPool

from app.settings import Settings

__all__ = ["DbPool", "AppSettings", "base_url"]


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _pool(request: Request) -> AsyncConnectionPool:
    return request.app.state.pool


def base_url(request: Request) -> str:
    """The public base URL: VLKB_BASE_URL when set, else what the client used to reach us."""
    configured = request.app.state.settings.base_url
    if configured:
        return configured.rstrip("/")
    return str(request.base_url).rstrip("/")


AppSettings = Annotated[Settings, Depends(_settings)]
DbPool = Annotated[AsyncConnectionPool, Depends(_pool)]
BaseUrl = Annotated[str, Depends(base_url)]
