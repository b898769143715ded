"""The OAI-PMH publishing registry, ``/oai`` (GET and POST): the site's VOResource records.

The service record's capabilities are taken from the capabilities documents the service's own
VOSI endpoints answer (TAP, SIA) and built with the same builder for SODA and DataLink, so the
registry never describes another service than the one running.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import Response

from app.access import Offer
from app.capabilities import sfind_capabilities, sia_capabilities, stamps_capabilities, tap_capabilities
from app.deps import AppSettings, BaseUrl, DbPool
from app.params import RawParams, RequestParams
from app.settings import Settings
from schemas import load_schemas
from vo import vosi
from vo.datalink import STD_LINKS
from vo.errors import TooLargeError
from vo.moc import MocCache
from vo.registry.datestamps import DatestampBook
from vo.registry.oai import respond
from vo.registry.resources import Curation, Site, capability_elements, sia_capability
from vo.registry.site import STD_SODA_ASYNC, STD_SODA_SYNC, published_records

__all__ = ["OAI_PATH", "router", "site_of"]

OAI_PATH = "/oai"
#: OAI-PMH arguments are short; a larger POST body is not a harvester's
_MAX_BODY = 64 * 1024
router = APIRouter(tags=["Registry"])


def site_of(settings: Settings, base: str) -> Site:
    """The site description of ``settings`` for records whose URLs start at ``base``."""
    return Site(
        authority=settings.authority,
        base_url=base,
        title=settings.service_title,
        description=settings.registry_description,
        curation=Curation(
            publisher=settings.registry_publisher,
            publisher_id=settings.registry_publisher_id,
            contact_name=settings.registry_contact_name,
            contact_email=settings.registry_contact_email,
            creators=tuple(settings.registry_creators),
            subjects=tuple(settings.registry_subjects),
            reference_url=settings.registry_reference_url,
            rights=settings.registry_rights,
        ),
    )


def _book_path(settings: Settings) -> Path:
    """Where the datestamps of this authority's records are kept: one book per authority, so a
    service moved to another authority is a new registry (no records of the old one, deleted or not)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", settings.authority)
    return settings.home / "registry" / safe / "datestamps.json"


def _arguments(params: RawParams) -> dict[str, list[str]]:
    """OAI-PMH arguments (section 3.1.1: GET query or urlencoded POST body) with their names as
    sent: the protocol's names are case-sensitive. Read by the one request reader (bounded, timed,
    NUL refused), then held to the protocol's size: arguments are short."""
    if sum(len(k) + len(v) for k, v in params.items) > _MAX_BODY:
        raise TooLargeError(f"OAI-PMH arguments are at most {_MAX_BODY} bytes")
    args: dict[str, list[str]] = {}
    for key, value in params.items:
        args.setdefault(key, []).append(value)
    return args


@router.api_route(OAI_PATH, methods=["GET", "POST"])
async def get_oai(params: RequestParams, settings: AppSettings, base: BaseUrl, pool: DbPool, offer: Offer) -> Response:
    """Answer one OAI-PMH 2.0 request (Identify, ListMetadataFormats, ListSets, GetRecord,
    ListIdentifiers, ListRecords) with the records of this site."""
    args = _arguments(params)
    tap = capability_elements(tap_capabilities(settings, base, offer.security, "/tap"))
    sia = [sia_capability(c, max_records=settings.maxrec_limit)
           for c in capability_elements(sia_capabilities(base, offer.security))]
    others = capability_elements(vosi.service_capabilities(base, "", [
        vosi.Capability(STD_SODA_SYNC, "/soda/sync"),
        vosi.Capability(STD_SODA_ASYNC, "/soda/async"),
        vosi.Capability(STD_LINKS, "/datalink/links"),
    ], security=offer.security))
    # source finding and postage stamps (vlkb's own standardIDs)
    stamps = capability_elements(stamps_capabilities(base, offer.security))
    sfind = capability_elements(sfind_capabilities(base, offer.security))
    published = await published_records(
        pool, site_of(settings, base), capabilities=[*tap, *sia, *others, *sfind, *stamps],
        tableset=vosi.tableset(load_schemas()), cache=MocCache(settings.moc_cache_dir),
        moc_order=settings.moc_order, book=DatestampBook(_book_path(settings)),
        oai_path=OAI_PATH, page_size=settings.oai_page_size, tap_url=base + "/tap", sia_url=base + "/sia/query",
    )
    body = respond(args, base_url=base + OAI_PATH, records=published.records, identify=published.identify,
                   page_size=settings.oai_page_size)
    return Response(body, media_type="text/xml")
