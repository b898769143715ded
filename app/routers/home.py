"""The landing page and the health probe."""

from __future__ import annotations

import html

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse

from app.access import CurrentCaller
from app.deps import AppSettings, BaseUrl, DbPool
from app.routers.vosi import database_up
from vo.caller import surveys as caller_surveys

__all__ = ["router"]

router = APIRouter(tags=["service"])


@router.get("/health")
async def get_health(pool: DbPool) -> JSONResponse:
    """Liveness and readiness: 200 when the database answers, 503 otherwise."""
    up, note = await database_up(pool)
    return JSONResponse({"status": "ok" if up else "unavailable", "detail": note}, status_code=200 if up else 503)


@router.get("/", response_class=HTMLResponse)
async def get_home(settings: AppSettings, base: BaseUrl, pool: DbPool, caller: CurrentCaller) -> HTMLResponse:
    """A small page listing the services and the surveys the caller may read."""
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
    ]
    rows = "".join(
        f"<tr><td>{esc(s['name'])}</td><td>{esc(s['species'])}</td><td>{esc(s['transition'])}</td>"
        f"<td>{s['dataset_count'] or 0}</td><td>{esc(s['description'] or '')}</td></tr>"
        for s in surveys
    )
    links = "".join(f'<li>{esc(n)}: <a href="{esc(u)}">{esc(u)}</a></li>' for n, u in services)
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(settings.service_title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:70em}}td,th{{padding:.2em .6em;text-align:left}}</style>
</head><body><h1>{esc(settings.service_title)}</h1>
<p>IVOA services for Galactic-plane surveys. Point TOPCAT or pyvo at the TAP URL below.</p>
<h2>Services</h2><ul>{links}</ul>
<h2>Surveys</h2><table><tr><th>Survey</th><th>Species</th><th>Transition</th><th>Datasets</th><th>Description</th></tr>
{rows}</table></body></html>"""
    return HTMLResponse(page)
