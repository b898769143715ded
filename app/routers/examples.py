"""DALI 1.1 examples of the TAP service: ``/tap/examples`` (TAP 1.1 section 2.3.1)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from app.deps import AppSettings
from vo import examples

__all__ = ["router"]

router = APIRouter(prefix="/tap", tags=["TAP"])

# DALI 1.1 section 2.3: an XHTML+RDFa document; taplint accepts this type or text/html.
XHTML = "application/xhtml+xml"


@router.get("/examples")
async def get_examples(settings: AppSettings) -> Response:
    return Response(examples.examples_document(settings.service_title), media_type=XHTML)
