"""The ViaLactea client's two bases: the TAP base (default ``/vlkb``) and the datasets base
(``/vlkb/datasets``), as a thin layer over the standard services.

TAP base: ``availability``, ``tables``, ``capabilities`` (describing this base), ``sync`` and
``async``. They are the standard handlers (``app/routers/vosi.py``, ``tap.py``), and
``async`` holds the very same UWS jobs of kind ``tap`` as ``/tap/async``. The one difference
is a TSV answer over catalogue tables, rewritten for the client's whitespace split
(``vo/vialactea/tsv.py``). Datasets base: ``siav2/query``, the client's SIA answer
(``vo/vialactea/sia.py``), and ``soda/sync``, the standard cutout handler (it already takes
the raw ``? : /`` of the client's IDs, GALACTIC POS and answers FITS or a 4xx error), except for
the ID of a search's merge row (``did1;did2;...``), answered with the merge of those datasets
(the ``/soda/merge`` handler).
Nothing here redirects: SIA and SODA answer directly (the client follows no redirects there).

The identity is the service's own (bearer tokens through the global dependency, policies by
row-level security). :class:`BasicAccounts` adds the optional HTTP Basic account list of the
TAP base (``VLKB_VIALACTEA_BASIC_ACCOUNTS``), giving the same identity model: user and groups.
"""

from __future__ import annotations

import base64
import binascii

import structlog
from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import Response, StreamingResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from app.access import CurrentCaller, Offer
from app.capabilities import tap_capabilities
from app.deps import AppSettings, BaseUrl, DbPool, Lookups
from app.errors import REALM, votable_error
from app.params import RequestParams
from app.quotas import job_quota, query_quota
from app.routers import soda, vosi
from app.routers.tap import query_uploads, tap_query
from app.routers.tap_async import keep_uploads
from app.routers.uws import uws_router
from app.routers.vialactea_jobs import mcutout_router
from app.routers.vialactea_legacy import legacy_router
from app.settings import Settings
from vo import sia
from vo.caller import Caller
from vo.cutout.merge import Merged
from vo.vialactea import sia as vl_sia
from vo.vialactea import soda as vl_soda
from vo.vialactea import tap as vl_tap
from vo.vialactea.accounts import BasicAccount, parse_accounts, verify

__all__ = ["BasicAccounts", "install", "vialactea_router"]

log = structlog.get_logger("vlkb.vialactea")


async def vialactea_tap_sync(params: RequestParams, pool: DbPool, settings: AppSettings,
                             caller: CurrentCaller, base: BaseUrl) -> StreamingResponse:
    """TAP sync; a TSV answer over catalogue tables only is made whitespace-split safe."""
    q = tap_query(params, settings)
    uploads = await query_uploads(params, q, settings)
    chunks = await vl_tap.run_client_sync(pool, q, caller, timeout=settings.sync_timeout, uploads=uploads,
                                          base_url=base)
    return StreamingResponse(chunks, media_type=q.format.media_type)


async def vialactea_siav2_query(params: RequestParams, pool: DbPool, settings: AppSettings,
                                caller: CurrentCaller, base: BaseUrl) -> StreamingResponse:
    """SIA 2.0 with the client's columns, overlap codes and merge rows (TABLEDATA by default)."""
    q = sia.SiaQuery.from_params(
        params.values, maxrec_default=settings.maxrec_default, maxrec_limit=settings.maxrec_limit
    )
    chunks = await vl_sia.search(pool, q, caller, timeout=settings.sync_timeout, base_url=base)
    return StreamingResponse(chunks, media_type=q.format.media_type)


async def vialactea_soda_sync(params: RequestParams, pool: DbPool, caller: CurrentCaller,
                              settings: AppSettings, recent: Lookups) -> Response:
    """SODA sync cutout; the ID of a merge row (overlapSky 0: ``did1;did2;...``) gets the merged cut."""
    answer = await vl_soda.client_cutout(pool, params.values, caller, max_voxels=settings.merge_max_voxels,
                                         recent=recent)
    if isinstance(answer, Merged):
        return await soda.merge_response(answer)
    return soda.cutout_response(answer)


def vialactea_router(prefix: str) -> APIRouter:
    """The routes of the TAP base ``prefix`` and the datasets base ``prefix/datasets``."""
    router = APIRouter(tags=["ViaLactea"])

    async def get_vialactea_capabilities(settings: AppSettings, base: BaseUrl, offer: Offer) -> Response:
        return Response(tap_capabilities(settings, base, offer.security, prefix), media_type=vosi.XML,
                        headers=offer.headers)

    router.add_api_route(f"{prefix}/availability", vosi.get_availability, methods=["GET"],
                         name="vialactea_get_availability")
    router.add_api_route(f"{prefix}/capabilities", get_vialactea_capabilities, methods=["GET", "HEAD"],
                         name="vialactea_get_capabilities")
    router.add_api_route(f"{prefix}/tables", vosi.get_tables, methods=["GET"], name="vialactea_get_tables")
    router.add_api_route(f"{prefix}/tables/{{name}}", vosi.get_table, methods=["GET"], name="vialactea_get_table")
    router.add_api_route(f"{prefix}/sync", vialactea_tap_sync, methods=["GET", "POST"], name="vialactea_tap_sync")
    # the same jobs as /tap/async (kind "tap"); their URLs are written under this base
    router.include_router(uws_router(f"{prefix}/async", "tap", keep_files=keep_uploads))
    datasets = f"{prefix}/datasets"
    router.add_api_route(f"{datasets}/siav2/query", vialactea_siav2_query, methods=["GET", "POST"],
                         name="vialactea_siav2_query")
    router.add_api_route(f"{datasets}/soda/sync", vialactea_soda_sync, methods=["GET", "POST"],
                         name="vialactea_soda_sync")
    return router


class BasicAccounts:
    """ASGI middleware: HTTP Basic credentials on the TAP base ``prefix`` become the caller's identity.

    It runs before the routes, so the identity dependency (``app.access.current_identity``)
    finds the identity on the request and every route (policies, job owner) uses it. A wrong
    user or password is a 401 with a Basic challenge; a bearer token is left to the global
    dependency. A query (``sync``, ``async``) with no credentials at all is a 401 carrying a Basic
    and a Bearer challenge: client builds that log in only when challenged then send their
    account (the VOSI endpoints stay anonymous, and so does the standard ``/tap``). The
    datasets base is not covered: Basic is for the TAP base.
    """

    def __init__(self, app: ASGIApp, *, prefix: str, accounts: dict[str, BasicAccount]) -> None:
        self.app = app
        self.prefix = prefix
        self.datasets = prefix + "/datasets"
        self.accounts = accounts

    def _query(self, path: str) -> bool:
        rest = path[len(self.prefix):]
        return rest in ("/sync", "/async") or rest.startswith("/async/")

    def _covers(self, path: str) -> bool:
        if path != self.prefix and not path.startswith(self.prefix + "/"):
            return False
        return path != self.datasets and not path.startswith(self.datasets + "/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._covers(scope["path"]):
            header = Headers(scope=scope).get("authorization", "")
            scheme, _, credentials = header.strip().partition(" ")
            if scheme.lower() == "basic":
                account = self._check(credentials.strip())
                if account is None:
                    response = votable_error("AuthorizationError: wrong user name or password", 401,
                                             {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'})
                    await response(scope, receive, send)
                    return
                scope.setdefault("state", {})["identity"] = Caller(user=account.user, groups=account.groups)
            elif not header and self._query(scope["path"]):
                challenges = f'Basic realm="{REALM}", charset="UTF-8", Bearer realm="{REALM}"'
                response = votable_error("AuthorizationError: log in (Basic or Bearer) to query this base", 401,
                                         {"WWW-Authenticate": challenges})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _check(self, credentials: str) -> BasicAccount | None:
        try:
            user, sep, password = base64.b64decode(credentials, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        if not sep:
            return None
        found = verify(self.accounts, user, password)
        if found is None:
            log.info("basic credentials refused", user=user)
        return found


def install(app: FastAPI, settings: Settings) -> None:
    """Mount the client's bases (unless ``vialactea_path`` is empty) and its Basic accounts if configured."""
    prefix = settings.vialactea_path.rstrip("/")
    if not prefix:
        return
    if not prefix.startswith("/"):
        raise ValueError(f"VLKB_VIALACTEA_PATH must start with /, got {settings.vialactea_path!r}")
    quotas = [Depends(query_quota), Depends(job_quota)]  # as on the IVOA bases (app/quotas.py)
    app.include_router(vialactea_router(prefix), dependencies=quotas)
    app.include_router(mcutout_router(f"{prefix}/datasets"), dependencies=quotas)
    app.include_router(legacy_router(f"{prefix}/datasets"), dependencies=quotas)
    if settings.vialactea_basic_accounts is not None:
        listed = parse_accounts(settings.vialactea_basic_accounts.get_secret_value())
        if listed:
            app.add_middleware(BasicAccounts, prefix=prefix, accounts=listed)
            log.info("basic accounts accepted on the ViaLactea TAP base", prefix=prefix, users=len(listed))
