"""Who the caller is, as far as dataset access goes: the groups whose surveys they may read.

Every protocol core function that shows datasets takes ``groups`` (empty for an anonymous
caller) and hides the surveys restricted to other groups (``db.datasets``). Until OIDC
tokens are checked (the auth issue replaces :func:`caller_groups` with the groups of the
caller's ``Identity``), every caller is anonymous and sees public surveys only.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

__all__ = ["CallerGroups", "caller_groups"]


async def caller_groups(request: Request) -> tuple[str, ...]:
    """The caller's groups: none yet, so only public surveys are visible."""
    return ()


CallerGroups = Annotated[tuple[str, ...], Depends(caller_groups)]
