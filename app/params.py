"""One dependency that turns a request's parameters into a case-folded ``dict[str, list[str]]``.

IVOA parameter names are case-insensitive (DALI 1.1 section 3.1), values are not. GET query
strings, urlencoded forms and multipart forms all arrive here, so each protocol's parameter
model (``vo/``) is written once, as ``from_params(raw)``. Uploaded files stay out of the
dict; ``files`` holds them by part name for TAP UPLOAD and the ViaLactea ``mcutout`` part.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import UploadFile

from vo.errors import UsageError

__all__ = ["RawParams", "RequestParams", "request_params"]


@dataclass
class RawParams:
    """Case-folded (upper-case) parameter names to their values, plus uploaded files."""

    values: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, UploadFile] = field(default_factory=dict)


async def request_params(request: Request) -> RawParams:
    """Collect GET and POST parameters, names upper-cased, repeated values kept in order."""
    raw = RawParams()
    for key, value in request.query_params.multi_items():
        raw.values.setdefault(key.upper(), []).append(value)
    if request.method == "POST":
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            try:
                form = await request.form()
            except Exception as exc:  # malformed bodies are the client's fault
                raise UsageError(f"cannot read the request body: {exc}") from None
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    raw.files[key] = value
                else:
                    raw.values.setdefault(key.upper(), []).append(value)
    return raw


RequestParams = Annotated[RawParams, Depends(request_params)]
