"""Source finding as a service: the apps (``/sfind/apps``) and their UWS jobs (``/sfind/async``, kind ``sfind``).

The runner is ``vo/jobs/sfind.py``, registered in ``app/jobs.py``. An image sent with a new job
(``UPLOAD=image,param:part``) is kept with it (``upload.fits``) within the TAP upload byte limit.
The app pages answer JSON, or an HTML page when the client prefers ``text/html`` (a browser) or asks
``RESPONSEFORMAT=html``.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from app.capabilities import sfind_capabilities
from app.deps import BaseUrl
from app.params import RawParams, RequestParams
from app.routers.user_tables import save_as_terms
from app.routers.uws import uws_router
from app.routers.vosi import service_vosi
from app.settings import Settings
from vo.dali import DaliParams
from vo.errors import UsageError
from vo.jobs.sfind import UPLOAD_FILE
from vo.sfind.describe import app_description, app_list, apps_html, description_html
from vo.sfind.params import upload_ref
from vo.upload import check_bytes

__all__ = ["router"]

router = APIRouter(tags=["source finding"])


def _wants_html(request: Request, params: RequestParams) -> bool:
    fmt = (DaliParams(params.values).single("RESPONSEFORMAT") or "").lower()
    if fmt:
        return fmt in ("html", "text/html")
    accept = request.headers.get("accept", "")
    return "text/html" in accept and not accept.lstrip().startswith("application/json")


service_vosi(router, "sfind", sfind_capabilities, "/sfind")  # vlkb's own standardID, docs/sfind.md


@router.get("/sfind/apps")
async def get_sfind_apps(request: Request, params: RequestParams, base: BaseUrl) -> Response:
    """The source finders this service runs."""
    doc = app_list(base)
    return HTMLResponse(apps_html(doc)) if _wants_html(request, params) else JSONResponse(doc)


@router.get("/sfind/apps/{app}")
async def get_sfind_app(app: str, request: Request, params: RequestParams) -> Response:
    """One finder's options: name, type, default, min, max, allowed values, unit, description, advanced."""
    doc = app_description(app)
    return HTMLResponse(description_html(doc)) if _wants_html(request, params) else JSONResponse(doc)


async def keep_image(params: RawParams, settings: Settings) -> Mapping[str, bytes]:
    """The FITS image UPLOAD names (``UPLOAD=image,param:part``), within the TAP upload byte limit
    (VLKB_UPLOAD_MAX_BYTES), kept with the job; its content is checked when the job runs."""
    dali = DaliParams(params.values)
    ref = upload_ref(dali.repeated("UPLOAD"))
    if ref is None:
        return {}
    if dali.repeated("ID"):
        raise UsageError("UPLOAD: give archived datasets (ID) or an uploaded image (UPLOAD), not both")
    parts = await params.read_files({ref.part})
    if ref.part not in parts:
        raise UsageError(f"UPLOAD {ref.name}: the request has no part named {ref.part!r} (send the FITS file as "
                         f"that part of a multipart/form-data request)")
    check_bytes([ref], parts, settings.upload_max_bytes)
    if not parts[ref.part]:
        raise UsageError(f"UPLOAD {ref.name}: the file is empty")
    return {UPLOAD_FILE: parts[ref.part]}


router.include_router(uws_router("/sfind/async", "sfind", keep_files=keep_image, terms=save_as_terms))
