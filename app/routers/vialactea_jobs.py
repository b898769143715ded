"""The ViaLactea client's multi-cutout jobs: UWS at ``/vlkb/datasets/soda/async/uws`` (kind ``mcutout``).

The standard UWS resources (``app/routers/uws.py``) with one addition: the request document,
sent as the multipart part ``mcutout`` (or a plain ``MCUTOUT`` form field), is checked when the
job is created (a document that is not a JSON array of objects refuses the request with 400 and
leaves no job) and kept with the job for the runner (``vo/jobs/mcutout.py``). The client's flow
is the plain UWS one: ``POST ?PHASE=RUN`` answers 303 with the job URL, ``phase`` is plain
text, and the ``Report`` and ``mcutout.tar.gz`` results are served directly (no redirect).
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import APIRouter

from app.params import RawParams
from app.routers.uws import uws_router
from app.settings import Settings
from vo.dali import DaliParams
from vo.jobs.mcutout import REQUEST
from vo.vialactea.mcutout import parse_request

__all__ = ["KIND", "keep_request", "mcutout_router"]

KIND = "mcutout"
#: the multipart part the client sends
PART = "mcutout"


async def keep_request(params: RawParams, settings: Settings) -> Mapping[str, bytes]:
    """The request document, checked, to keep with the job; nothing when none was sent (the job
    then ends in ERROR when it runs, unless a document comes with POST /parameters)."""
    parts = {name.lower(): name for name in params.files}
    if PART in parts:
        data = (await params.read_files({parts[PART]}))[parts[PART]]
    elif (field := DaliParams(params.values).single("MCUTOUT")) is not None:
        data = field.encode()
    else:
        return {}
    parse_request(data, max_cuts=settings.soda_max_cuts)
    return {REQUEST: data}


def mcutout_router(datasets: str) -> APIRouter:
    """The multi-cutout jobs under the datasets base ``datasets`` (e.g. ``/vlkb/datasets``)."""
    return uws_router(f"{datasets}/soda/async/uws", KIND, keep_files=keep_request)
