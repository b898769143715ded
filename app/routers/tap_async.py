"""TAP 1.1 asynchronous queries (section 2.3): UWS jobs of kind ``tap`` under ``/tap/async``.

The ``tap`` runner (``vo/jobs/tap.py``) is registered in ``app/jobs.py``.
"""

from __future__ import annotations

from app.routers.uws import uws_router

__all__ = ["router"]

router = uws_router("/tap/async", "tap")
