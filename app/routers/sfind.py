"""Source finding as a service: the apps (``/sfind/apps``) and their UWS jobs (``/sfind/async``, kind ``sfind``).

The runner is ``vo/jobs/sfind.py``, registered in ``app/jobs.py``. The app pages answer JSON,
or an HTML page when the client prefers ``text/html`` (a browser) or asks ``RESPONSEFORMAT=html``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from app.deps import BaseUrl
from app.params import RequestParams
from app.routers.uws import uws_router
from vo.dali import DaliParams
from vo.sfind.describe import app_description, app_list, apps_html, description_html

__all__ = ["router"]

router = APIRouter(tags=["source finding"])


def _wants_html(request: Request, params: RequestParams) -> bool:
    fmt = (DaliParams(params.values).single("RESPONSEFORMAT") or "").lower()
    if fmt:
        return fmt in ("html", "text/html")
    accept = request.headers.get("accept", "")
    return "text/html" in accept and not accept.lstrip().startswith("application/json")


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


router.include_router(uws_router("/sfind/async", "sfind"))
