"""The portal (the landing page at ``/``), its static files, and the health probe.

``/`` is rendered here: the list of services and the surveys the caller may read are in the HTML
itself (useful with no JavaScript, and what crawlers and the registry see), and the portal's sky
view, ADQL console, cube viewer and job list are plain ES modules from ``/static`` (``web/static``)
over the service's own protocols. The browser libraries (Aladin Lite, uPlot) are installed by
``make setup`` from npm into ``web/node_modules`` and served under ``/static/vendor``: the portal
fetches nothing from outside the service.
"""

from __future__ import annotations

import html
from pathlib import Path
from string import Template

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from app.access import CurrentCaller
from app.deps import AppSettings, BaseUrl, DbPool
from app.routers.vosi import database_up
from vo.caller import surveys as caller_surveys
from vo.errors import NotFoundError

__all__ = ["router"]

router = APIRouter(tags=["service"])

_TEMPLATE = Path(__file__).resolve().parent.parent / "templates" / "portal.html"
#: the vendored browser files the portal may load, by the name it asks for (nothing else of node_modules)
_VENDOR = {
    "aladin.js": "aladin-lite/dist/aladin.js",
    "uPlot.esm.js": "uplot/dist/uPlot.esm.js",
    "uPlot.min.css": "uplot/dist/uPlot.min.css",
}
_MEDIA = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml",
          ".html": "text/html; charset=utf-8", ".png": "image/png"}


@router.get("/health")
async def get_health(pool: DbPool) -> JSONResponse:
    """Liveness and readiness: 200 when the database answers, 503 otherwise."""
    up, note = await database_up(pool)
    return JSONResponse({"status": "ok" if up else "unavailable", "detail": note}, status_code=200 if up else 503)


@router.get("/", response_class=HTMLResponse)
async def get_home(settings: AppSettings, base: BaseUrl, pool: DbPool, caller: CurrentCaller) -> HTMLResponse:
    """The portal: the services and the surveys the caller may read, and the sky view and consoles."""
    try:
        surveys = await caller_surveys(pool, caller)
    except Exception:  # the page still renders without the database
        surveys = []
    esc = html.escape
    services = [
        ("TAP (ADQL)", f"{base}/tap"),
        ("TAP tables", f"{base}/tap/tables"),
        ("TAP capabilities", f"{base}/tap/capabilities"),
        ("TAP availability", f"{base}/tap/availability"),
        ("TAP examples", f"{base}/tap/examples"),
        ("SIA 2 query", f"{base}/sia/query"),
        ("HiPS list", f"{base}/hips/list"),
        ("Coverage MOCs", f"{base}/moc"),
        ("API documentation", f"{base}/api/docs"),
    ]
    rows = "".join(
        f"<tr><td>{esc(s['name'])}</td><td>{esc(s['species'])}</td><td>{esc(s['transition'])}</td>"
        f"<td>{s['dataset_count'] or 0}</td><td>{esc(s['description'] or '')}</td></tr>"
        for s in surveys
    )
    links = "".join(f'<li>{esc(n)}: <a href="{esc(u)}">{esc(u)}</a></li>' for n, u in services)
    # where the portal's login starts (OIDC discovery): the configured issuer, else the development one
    if settings.oidc_issuer:
        discovery = f"{settings.oidc_issuer.rstrip('/')}/.well-known/openid-configuration"
    else:
        discovery = f"{base}/dev-issuer/.well-known/openid-configuration" if settings.dev_issuer else ""
    page = Template(_TEMPLATE.read_text(encoding="utf-8")).substitute(
        title=esc(settings.service_title), base=esc(base), services=links, surveys=rows,
        oidc_discovery=esc(discovery), oidc_client=esc(settings.portal_client_id))
    return HTMLResponse(page)


@router.get("/static/vendor/{name}", include_in_schema=False)
async def get_vendor_file(name: str, settings: AppSettings) -> FileResponse:
    """A vendored browser library (Aladin Lite, uPlot), from ``web/node_modules``."""
    rel = _VENDOR.get(name)
    path = settings.web_root / "node_modules" / rel if rel else None
    if path is None or not path.is_file():
        raise NotFoundError(f"{name}: no such file (run `make setup` to install the portal's libraries)")
    return FileResponse(path, media_type=_MEDIA.get(path.suffix), headers={"Cache-Control": "max-age=86400"})


@router.get("/static/{name}", include_in_schema=False)
async def get_static_file(name: str, settings: AppSettings) -> FileResponse:
    """One file of the portal (``web/static``): its modules and style sheet; no sub-directories."""
    root = (settings.web_root / "static").resolve()
    path = (root / name).resolve()
    if "/" in name or name.startswith(".") or path.parent != root or not path.is_file():
        raise NotFoundError(f"{name}: no such file")
    return FileResponse(path, media_type=_MEDIA.get(path.suffix, "application/octet-stream"),
                        headers={"Cache-Control": "no-cache"})
