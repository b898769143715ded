"""The VOSI capabilities documents of the query services, from the settings.

Shared by the VOSI routes (``/tap/capabilities``, ``/sia/capabilities``, the ViaLactea base) and
the registry's service record (``/oai``), so both always describe the same running service; the
documents themselves are built by :mod:`vo.vosi`. Not a router: routers call these, never one
another's handlers.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.settings import Settings
from vo import tap, vosi
from vo.stamps import STD_STAMPS_ASYNC, STD_STAMPS_SYNC

__all__ = ["STD_SFIND", "sfind_capabilities", "sia_capabilities", "stamps_capabilities", "tap_capabilities"]


def tap_capabilities(settings: Settings, base: str, security: Sequence[str | None], path: str) -> bytes:
    """The TAP capabilities document of the TAP service mounted at ``path`` (``/tap``, or the
    ViaLactea client's base)."""
    limits = vosi.TapLimits(
        retention_default=settings.destruction_days * 86400,
        retention_hard=settings.destruction_days * 86400,
        execution_default=settings.execution_duration,
        execution_hard=settings.execution_duration,
        maxrec_default=settings.maxrec_default,
        maxrec_hard=settings.maxrec_limit,
    )
    body = vosi.capabilities(
        base,
        path,
        languages=[("ADQL", tap.ADQL_VERSIONS, tap.ADQL_FEATURES)],
        output_formats=tap.OUTPUT_FORMATS,
        limits=limits,
        upload_methods=tap.UPLOAD_METHODS,
        upload_limit=vosi.UploadLimit(rows=settings.upload_max_rows, bytes=settings.upload_max_bytes),
        # DALI 1.1 section 2.3: the examples document is read in a browser, hence vr:WebBrowser.
        extra=[vosi.Capability(vosi.STD_EXAMPLES, "/tap/examples", xsi_type="vr:WebBrowser")],
        security=security,
    )
    return body


def sia_capabilities(base: str, security: Sequence[str | None]) -> bytes:
    """The SIA 2.0 capabilities document (SIA 2.0 section 3)."""
    return vosi.service_capabilities(base, "/sia", [
        vosi.Capability(vosi.STD_SIA2, "/sia/query", version="2.0"),
    ], security=security)


#: source finding is no IVOA standard: its capability carries a standardID of vlkb's own
STD_SFIND = "ivo://vlkb/std/sfind#async-1.0"


def sfind_capabilities(base: str, security: Sequence[str | None]) -> bytes:
    """Source finding (docs/sfind.md): no IVOA standard, so vlkb's own standardID on a
    ``vs:ParamHTTP`` interface (its UWS 1.1 job list, parameters as HTTP form fields)."""
    return vosi.service_capabilities(base, "/sfind", [vosi.Capability(STD_SFIND, "/sfind/async")],
                                     security=security)


def stamps_capabilities(base: str, security: Sequence[str | None]) -> bytes:
    """The postage-stamps service (docs/stamps.md): no IVOA standard, so vlkb's own standardIDs on
    ``vs:ParamHTTP`` interfaces (a DALI-style sync endpoint and a UWS job list)."""
    return vosi.service_capabilities(base, "/stamps", [
        vosi.Capability(STD_STAMPS_SYNC, "/stamps/sync"),
        vosi.Capability(STD_STAMPS_ASYNC, "/stamps/async"),
    ], security=security)
