"""Exception handlers: every failure leaves as a DALI error document with an honest status.

Three handlers (STYLE section 4): a :class:`vo.errors.VlkbError` becomes its own status and
message; a FastAPI validation error becomes a UsageError; anything else becomes a 500 with a
generic text and the request id, the traceback going to the log only.
"""

from __future__ import annotations

import uuid

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from app.logging import mark_logged
from vo.errors import AuthError, VlkbError
from vo.votable.errors import error_document

__all__ = ["REALM", "bearer_challenge", "install_error_handlers", "votable_error"]

log = structlog.get_logger("vlkb.errors")

VOTABLE_MEDIA = "application/x-votable+xml"


def votable_error(message: str, status: int, headers: dict[str, str] | None = None) -> Response:
    """A DALI error response."""
    return Response(error_document(message), status_code=status, media_type=VOTABLE_MEDIA, headers=headers)


#: the protection space of every challenge (RFC 9110 section 11.5)
REALM = "vlkb"


def bearer_challenge(exc: VlkbError | None = None) -> str:
    """The RFC 6750 ``Bearer`` challenge: bare (optional authentication), or saying why a token failed."""
    challenge = f'Bearer realm="{REALM}"'
    if isinstance(exc, AuthError) and exc.token_error:
        # quoted-string: no quotes, backslashes or control characters in the description
        text = "".join(c for c in exc.message if c.isprintable() and c not in '"\\')[:200]
        challenge += f', error="{exc.token_error}", error_description="{text}"'
    return challenge


async def _vlkb_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, VlkbError)
    retry_after = getattr(exc, "retry_after", None)  # app.pool.BusyError: when to try again
    if retry_after is not None:
        log.warning("request refused, service busy", error=exc.message, path=request.url.path)
    elif exc.status >= 500:
        log.error("request failed", error=exc.message, path=request.url.path)
    else:
        log.info("request refused", error=exc.message, status=exc.status, path=request.url.path)
    headers = dict(exc.headers)
    if exc.status == 401:
        headers["WWW-Authenticate"] = bearer_challenge(exc)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return votable_error(f"{exc.code}: {exc.message}", exc.status, headers or None)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "body", "path"))
        parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return votable_error("UsageError: " + "; ".join(parts), 400)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    text = {404: "no such resource", 405: "method not allowed"}.get(exc.status_code, str(exc.detail))
    if exc.status_code == 404:
        text = f"NotFoundFault: {request.url.path}: {text}"
    return votable_error(text, exc.status_code, getattr(exc, "headers", None))


async def _unexpected(request: Request, exc: Exception) -> Response:
    rid = getattr(request.state, "request_id", None) or uuid.uuid4().hex[:12]
    log.error("unexpected failure", request_id=rid, path=request.url.path, exc_info=exc)
    mark_logged(exc)  # Starlette re-raises it to the server, which must not log it again
    return votable_error(f"Error: internal failure of the service (request {rid}); it has been logged", 500)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(VlkbError, _vlkb_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
