"""Persistent user tables over HTTP, in the shape of CADC's YouCat (docs/user-tables.md).

``PUT /tap/tables/{schema.table}`` creates a table from a VOTable, CSV/TSV or Parquet body (a
VOTable of FIELDs only declares the columns), ``POST /tap/load/{schema.table}`` appends rows,
``DELETE /tap/tables/{schema.table}`` drops it, ``POST /tap/table-update`` creates a UWS job that
adds an index or sets the groups a table is shared with. ``GET /tap/tables/{schema.table}`` (the VOSI router) describes
it. Each handler reads the request and calls one function of :mod:`vo.usertables`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.access import CurrentCaller
from app.deps import AppSettings, BaseUrl, DbPool
from app.params import RawParams, RequestParams, read_body
from app.routers.uws import uws_router
from app.settings import Settings
from vo import usertables, vosi
from vo.dali import DaliParams
from vo.jobs import save_as

__all__ = ["check_update", "limits", "router", "save_as_terms", "update_router"]

router = APIRouter(prefix="/tap", tags=["User tables"])

_XML = "text/xml"


def limits(settings: Settings) -> usertables.Limits:
    """Each user's quota, and the columns a table may have."""
    return usertables.Limits(max_rows=settings.user_tables_max_rows, max_bytes=settings.user_tables_max_bytes,
                             max_columns=settings.upload_max_columns)


def save_as_terms(settings: Settings) -> dict[str, Any]:
    """The terms of a job that may ``SAVE_AS`` a table: the quota above, fixed when it is accepted."""
    return save_as.terms(limits(settings))


async def _body(request: Request, settings: Settings) -> bytes:
    return await read_body(request, settings.user_tables_max_bytes, "VLKB_USER_TABLES_MAX_BYTES")


@router.put("/tables/{name}", status_code=201)
async def put_table(name: str, request: Request, params: RequestParams, pool: DbPool, settings: AppSettings,
                    caller: CurrentCaller, base: BaseUrl) -> Response:
    """Create ``name`` (``user_<you>.table``) from the body (or from the result of ``QUERY=``, ADQL) and
    load its rows; answers its VOSI description."""
    fmt, groups, description = usertables.create_options(params.values)
    if "QUERY" in params.values:  # from the result of an ADQL query, run for the caller
        entry = await usertables.create_from_query(
            pool, caller, name, params.values, limits(settings), maxrec_limit=settings.maxrec_limit,
            timeout=settings.sync_timeout, groups=groups, description=description)
    else:
        kind = usertables.body_format(request.headers.get("content-type"), fmt)
        entry = await usertables.create(pool, caller, name, await _body(request, settings), kind,
                                        limits(settings), groups=groups, description=description)
    return Response(vosi.single_table(entry.decl), status_code=201, media_type=_XML,
                    headers={"Location": f"{base}/tap/tables/{entry.decl.qualified_name}"})


@router.post("/load/{name}")
async def post_load(name: str, request: Request, params: RequestParams, pool: DbPool, settings: AppSettings,
                    caller: CurrentCaller) -> Response:
    """Append the rows of the body to ``name``, a table of the caller's."""
    kind = usertables.body_format(request.headers.get("content-type"), DaliParams(params.values).single("FORMAT"))
    added = await usertables.append(pool, caller, name, await _body(request, settings), kind, limits(settings))
    return Response(f"{added} rows appended to {name}\n", media_type="text/plain")


@router.delete("/tables/{name}", status_code=204)
async def delete_table(name: str, pool: DbPool, caller: CurrentCaller) -> Response:
    """Drop ``name``, a table of the caller's."""
    await usertables.drop(pool, caller, name)
    return Response(status_code=204)


async def check_update(params: RawParams, settings: Settings) -> Mapping[str, bytes]:
    """Refuse a ``table-update`` job with bad parameters when it is created (it keeps no file)."""
    usertables.TableUpdate.from_params(params.values)
    return {}


#: ``POST /tap/table-update`` creates a UWS job (303 to it; ``PHASE=RUN`` runs it at once), as in
#: CADC's YouCat, which pyvo's ``TAPService.create_index`` drives; the runner is
#: ``vo/jobs/table_update.py``
update_router = uws_router("/tap/table-update", "table_update", keep_files=check_update)
