"""One dependency that turns a request's parameters into a case-folded ``dict[str, list[str]]``.

IVOA parameter names are case-insensitive (DALI 1.1 section 3.1), values are not. GET query
strings, urlencoded forms and multipart forms all arrive here, so each protocol's parameter
model (``vo/``) is written once, as ``from_params(raw)``. Uploaded files stay out of the
dict; ``files`` holds them by part name for TAP UPLOAD and the ViaLactea ``mcutout`` part.

Form bodies are read in a bounded way: at most ``VLKB_UPLOAD_MAX_BYTES`` plus
:data:`FORM_SLACK` for the other fields, refused with 413 beyond that (from the declared
Content-Length when there is one, else while reading). The rest of an oversized body is read
and dropped up to the same size again, so the client is still reading when the 413 comes. A body
sent too slowly (``VLKB_BODY_TIMEOUT`` in all, ``VLKB_BODY_IDLE_TIMEOUT`` between pieces) is
answered 408 and its connection closed, so a client that never finishes cannot hold a worker. A
body with a content coding (gzip, ...) is refused with 415: nothing here decodes one, and read as
it is it would be garbage.

PostgreSQL text cannot hold a NUL character, and every value here may reach it (job parameters,
dataset keys, job ids), so a NUL in a parameter's name or value, or in a path parameter
(:func:`checked_path`, a dependency of every route), is refused with a 400 naming the parameter.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import UploadFile
from starlette.types import Message, Receive

from vo.dali import refuse_nul
from vo.errors import RequestTimeoutError, TooLargeError, UnsupportedEncodingError, UsageError

__all__ = ["FORM_SLACK", "RawParams", "RequestParams", "checked_path", "read_body", "request_params"]

#: bytes allowed in a form body besides the uploaded tables (QUERY and the other fields)
FORM_SLACK = 1 << 20

@dataclass
class RawParams:
    """Case-folded (upper-case) parameter names to their values, plus uploaded files."""

    values: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, UploadFile] = field(default_factory=dict)
    #: (name as sent, value) in order, for protocols whose names are case-sensitive (OAI-PMH)
    items: list[tuple[str, str]] = field(default_factory=list)

    async def read_files(self, names: set[str] | None = None) -> dict[str, bytes]:
        """The content of the uploaded parts (those in ``names`` when given); the body they
        came in was bounded, so this is too."""
        out = {}
        for name, upload in self.files.items():
            if names is None or name in names:
                await upload.seek(0)
                out[name] = await upload.read()
        return out


_FORM_TOO_LARGE = "VLKB_UPLOAD_MAX_BYTES for uploaded tables, plus 1 MiB for the other parameters"


def _add(raw: RawParams, key: str, value: str) -> None:
    if "\x00" in key:
        raise UsageError("a parameter name contains a NUL character")
    refuse_nul(key, value)
    raw.values.setdefault(key.upper(), []).append(value)
    raw.items.append((key, value))


async def checked_path(request: Request) -> None:
    """Refuse a NUL in any path parameter (a job id, a dataset key) before a route looks it up."""
    for name, value in request.path_params.items():
        if isinstance(value, str):
            refuse_nul(name, value)


class _Deadline:
    """The time limits of reading one body: ``total`` seconds in all, ``idle`` between pieces."""

    def __init__(self, total: float, idle: float) -> None:
        self.end = time.monotonic() + total
        self.idle = idle

    async def receive(self, receive: Receive) -> Message:
        wait = min(self.idle, self.end - time.monotonic())
        try:
            if wait <= 0:
                raise TimeoutError
            return await asyncio.wait_for(receive(), wait)
        except TimeoutError:
            raise RequestTimeoutError(
                "the request body arrived too slowly (VLKB_BODY_TIMEOUT, VLKB_BODY_IDLE_TIMEOUT); "
                "the connection is closed") from None


async def _drain(receive: Receive, budget: int, deadline: _Deadline) -> None:
    """Read and drop what is left of the body, at most ``budget`` bytes, within the deadline."""
    while budget > 0:
        try:
            message = await deadline.receive(receive)
        except RequestTimeoutError:
            return  # the error being answered says enough; the connection is closed anyway
        if message["type"] != "http.request":
            return
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _body_receive(request: Request, limit: int, setting: str) -> Receive:
    """The request's ``receive`` for reading its body, bounded: 415 for a content coding, 413 past
    ``limit`` bytes (``setting`` names the limit; from a declared Content-Length before anything is
    read, else while reading, the rest drained first), 408 when the body comes too slowly."""
    coding = request.headers.get("content-encoding", "").strip().lower()
    if coding not in ("", "identity"):
        raise UnsupportedEncodingError(
            f"Content-Encoding {coding!r}: this service reads request bodies only as sent (identity)")
    settings = request.app.state.settings
    deadline = _Deadline(settings.body_timeout, settings.body_idle_timeout)
    receive = request.receive

    def too_large() -> TooLargeError:
        return TooLargeError(f"the request body is larger than this service accepts ({limit} bytes: {setting})")

    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        if int(declared) <= 2 * limit:
            await _drain(receive, limit, deadline)
        raise too_large()
    seen = 0

    async def bounded() -> Message:
        nonlocal seen
        message = await deadline.receive(receive)
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                if message.get("more_body", False):
                    await _drain(receive, limit, deadline)
                raise too_large()
        return message

    return bounded


async def request_params(request: Request) -> AsyncIterator[RawParams]:
    """Collect GET and POST parameters, names upper-cased, repeated values kept in order."""
    raw = RawParams()
    for key, value in request.query_params.multi_items():
        _add(raw, key, value)
    form = None
    if request.method == "POST":
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            receive = await _body_receive(request, request.app.state.settings.upload_max_bytes + FORM_SLACK,
                                          _FORM_TOO_LARGE)
            try:
                form = await Request(request.scope, receive).form()
            except UsageError:
                raise
            except Exception as exc:  # malformed bodies are the client's fault
                raise UsageError(f"cannot read the request body: {exc}") from None
            for key, part in form.multi_items():
                if isinstance(part, UploadFile):
                    raw.files[key] = part
                else:
                    _add(raw, key, part)
    try:
        yield raw
    finally:
        if form is not None:
            await form.close()


RequestParams = Annotated[RawParams, Depends(request_params)]


async def read_body(request: Request, limit: int, setting: str) -> bytes:
    """A whole raw request body (a table sent as PUT/POST content), bounded like form bodies:
    413 past ``limit`` bytes (``setting`` names the limit), 408 when it arrives too slowly, 415
    for a content coding."""
    receive = await _body_receive(request, limit, setting)
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
