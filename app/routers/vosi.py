"""VOSI endpoints of the TAP service: ``/tap/availability``, ``/tap/capabilities``, ``/tap/tables``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from fastapi import APIRouter
from fastapi.responses import Response

from app.access import CurrentCaller, Offer
from app.capabilities import tap_capabilities
from app.deps import AppSettings, BaseUrl, DbPool
from app.params import RequestParams
from app.pool import BusyError
from schemas import find_table, load_schemas
from vo import usertables, vosi
from vo.dali import DaliParams
from vo.errors import UsageError

__all__ = ["XML", "database_up", "router", "service_vosi"]

router = APIRouter(prefix="/tap", tags=["VOSI"])

XML = "text/xml"
_STARTED = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def database_up(pool: DbPool) -> tuple[bool, str]:
    """Whether the database answers; the note says why not.

    A pool whose every connection serves a query is busy, not down: the probe says so at once
    instead of queueing behind the queries (and failing a liveness check under load).
    """
    busy = "service is busy: every database connection is serving a query"
    if getattr(pool, "saturated", False):
        return True, busy
    try:
        async with pool.connection(timeout=5) as conn:
            await conn.execute("SELECT 1")
    except BusyError:
        return True, busy
    except Exception as exc:  # any other failure means "not available"; the note says which
        return False, f"database unreachable: {type(exc).__name__}"
    return True, "service is accepting queries"


@router.get("/availability")
async def get_availability(pool: DbPool) -> Response:
    up, note = await database_up(pool)
    return Response(vosi.availability(up, note, _STARTED), media_type=XML)


def service_vosi(router: APIRouter, name: str, capabilities: Callable[[str, Sequence[str | None]], bytes],
                 prefix: str = "") -> None:
    """Add the VOSI capabilities (``capabilities(base, security)``) and availability routes of a
    service other than TAP (SIA, stamps, source finding) to ``router``, as ``get_<name>_capabilities``
    and ``get_<name>_availability``; availability is TAP's check, the database answering."""

    async def get_service_capabilities(base: BaseUrl, offer: Offer) -> Response:
        return Response(capabilities(base, offer.security), media_type=XML, headers=offer.headers)

    router.add_api_route(f"{prefix}/capabilities", get_service_capabilities, methods=["GET", "HEAD"],
                         name=f"get_{name}_capabilities")
    router.add_api_route(f"{prefix}/availability", get_availability, methods=["GET"], name=f"get_{name}_availability")


@router.api_route("/capabilities", methods=["GET", "HEAD"])
async def get_capabilities(settings: AppSettings, base: BaseUrl, offer: Offer) -> Response:
    return Response(tap_capabilities(settings, base, offer.security, "/tap"), media_type=XML, headers=offer.headers)


@router.get("/tables")
async def get_tables(params: RequestParams, pool: DbPool, caller: CurrentCaller) -> Response:
    detail = DaliParams(params.values).single("DETAIL")  # VOSI 1.1 tables: min or max
    if detail not in (None, "min", "max"):
        raise UsageError(f"DETAIL: expected min or max, got {detail!r}")
    # the caller's readable user tables follow the published ones (docs/user-tables.md)
    mine = usertables.tableset_schemas(await usertables.readable(pool, caller))
    return Response(vosi.tableset([*load_schemas(), *mine], detail=detail != "min"), media_type=XML)


@router.get("/tables/{name}")
async def get_table(name: str, pool: DbPool, caller: CurrentCaller) -> Response:
    try:
        table = find_table(name)
    except KeyError:
        # a user table the caller may read; any other name is "no table" (missing or not theirs alike)
        table = await usertables.describe(pool, caller, name)
    return Response(vosi.single_table(table), media_type=XML)
