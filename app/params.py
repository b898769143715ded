"""One dependency that turns a request's parameters into a case-folded ``dict[str, list[str]]``.

IVOA parameter names are case-insensitive (DALI 1.1 section 3.1), values are not. GET query
strings, urlencoded forms and multipart forms all arrive here, so each protocol's parameter
model (``vo/``) is written once, as ``from_params(raw)``. Uploaded files stay out of the
dict; ``files`` holds them by part name for TAP UPLOAD and the ViaLactea ``mcutout`` part.

Form bodies are read in a bounded way: at most ``VLKB_UPLOAD_MAX_BYTES`` plus
:data:`FORM_SLACK` for the other fields, refused with 413 beyond that (from the declared
Content-Length when there is one, else while reading). The rest of an oversized body is read
and dropped up to the same size again, so the client is still reading when the 413 comes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.datastructures import UploadFile

from vo.errors import TooLargeError, UsageError

__all__ = ["FORM_SLACK", "RawParams", "RequestParams", "request_params"]

#: bytes allowed in a form body besides the uploaded tables (QUERY and the other fields)
FORM_SLACK = 1 << 20

_Receive = Callable[[], Awaitable[dict[str, Any]]]


@dataclass
class RawParams:
    """Case-folded (upper-case) parameter names to their values, plus uploaded files."""

    values: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, UploadFile] = field(default_factory=dict)

    async def read_files(self, names: set[str] | None = None) -> dict[str, bytes]:
        """The content of the uploaded parts (those in ``names`` when given); the body they
        came in was bounded, so this is too."""
        out = {}
        for name, upload in self.files.items():
            if names is None or name in names:
                await upload.seek(0)
                out[name] = await upload.read()
        return out


def _too_large(limit: int) -> TooLargeError:
    return TooLargeError(f"the request body is larger than this service accepts ({limit} bytes: "
                         "VLKB_UPLOAD_MAX_BYTES for uploaded tables, plus 1 MiB for the other parameters)")


async def _drain(receive: _Receive, budget: int) -> None:
    """Read and drop what is left of the body, at most ``budget`` bytes."""
    while budget > 0:
        message = await receive()
        if message["type"] != "http.request":
            return
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def _bounded(receive: _Receive, limit: int) -> _Receive:
    """``receive`` that raises TooLargeError once the body passes ``limit`` bytes."""
    seen = 0

    async def bounded() -> dict[str, Any]:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                if message.get("more_body", False):
                    await _drain(receive, limit)
                raise _too_large(limit)
        return message

    return bounded


async def request_params(request: Request) -> AsyncIterator[RawParams]:
    """Collect GET and POST parameters, names upper-cased, repeated values kept in order."""
    raw = RawParams()
    for key, value in request.query_params.multi_items():
        raw.values.setdefault(key.upper(), []).append(value)
    form = None
    if request.method == "POST":
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            limit = request.app.state.settings.upload_max_bytes + FORM_SLACK
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                if int(declared) <= 2 * limit:
                    await _drain(request.receive, limit)
                raise _too_large(limit)
            try:
                form = await Request(request.scope, _bounded(request.receive, limit)).form()
            except TooLargeError:
                raise
            except Exception as exc:  # malformed bodies are the client's fault
                raise UsageError(f"cannot read the request body: {exc}") from None
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    raw.files[key] = value
                else:
                    raw.values.setdefault(key.upper(), []).append(value)
    try:
        yield raw
    finally:
        if form is not None:
            await form.close()


RequestParams = Annotated[RawParams, Depends(request_params)]
