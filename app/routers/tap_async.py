"""TAP 1.1 asynchronous queries (section 2.3): UWS jobs of kind ``tap`` under ``/tap/async``.

The ``tap`` runner (``vo/jobs/tap.py``) is registered in ``app/jobs.py``. Tables sent inline
with UPLOAD are checked when the job is created (a bad one refuses the request) and kept with
the job, named by :func:`vo.upload.stored_name`, for the runner to load when the job runs.
Tables uploaded by URL are only checked for their form at creation: the runner fetches them
when the job runs (the guarded fetch of ``vo/upload_fetch.py``), so creating a job stays
quick, the API process makes no outbound request for it, and a refused or failed fetch ends
the job in ERROR with the reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from app.params import RawParams
from app.routers.tap import upload_limits
from app.routers.uws import uws_router
from app.settings import Settings
from vo.dali import DaliParams
from vo.upload import parse_upload, read_uploads, stored_name

__all__ = ["keep_uploads", "router"]


async def keep_uploads(params: RawParams, settings: Settings) -> Mapping[str, bytes]:
    """The inline tables UPLOAD names, checked (limits, VOTable, columns), by stored name."""
    refs = [ref for ref in parse_upload(DaliParams(params.values).repeated("UPLOAD")) if ref.url is None]
    if not refs:
        return {}
    parts = await params.read_files({ref.part for ref in refs})
    await asyncio.to_thread(read_uploads, refs, parts, upload_limits(settings))
    return {stored_name(ref.part): parts[ref.part] for ref in refs}


router = uws_router("/tap/async", "tap", keep_files=keep_uploads)
