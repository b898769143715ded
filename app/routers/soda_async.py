"""SODA 1.0 asynchronous cutouts and merges (section 4): UWS jobs under ``/soda/async`` (kind
``soda``) and ``/soda/merge/async`` (kind ``merge``).

The runner (``vo/jobs/soda.py``) is registered for both kinds in ``app/jobs.py``; the merge
kind forces ``MERGE=true``.
"""

from __future__ import annotations

from fastapi import APIRouter

from app.routers.uws import uws_router

__all__ = ["router"]

router = APIRouter()
router.include_router(uws_router("/soda/async", "soda"))
router.include_router(uws_router("/soda/merge/async", "merge"))
