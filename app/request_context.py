"""Each request's id and log context, and the ``X-VO-Authenticated`` header of an authenticated answer.

A pure ASGI middleware (it was a ``@app.middleware("http")`` function: Starlette runs those in a task of
their own with memory streams between it and the app, a cost paid by every request, the cheapest
ones most visibly). Here the app runs in the same task, so the log context bound below is the one
the handlers log with.
"""

from __future__ import annotations

import uuid

import structlog
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth import header_text

__all__ = ["RequestContext"]


class RequestContext:
    """Gives the request an id (``request.state.request_id``, bound in the log context with its path), and
    tells an authenticated client who it is (AuthVO section 4.3; never sent to anonymous ones)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["request_id"] = uuid.uuid4().hex[:12]
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=state["request_id"], path=scope["path"])

        async def send_identified(message: Message) -> None:
            if message["type"] == "http.response.start":
                identity = state.get("identity")
                if identity is not None and identity.user is not None:
                    MutableHeaders(scope=message)["X-VO-Authenticated"] = header_text(identity.user)
            await send(message)

        await self.app(scope, receive, send_identified)
