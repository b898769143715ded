"""Who the caller is, for every router: the identity dependency and its parts.

``Authorization: Bearer <JWT>`` is checked by the verifier the lifespan put on
``app.state.verifier`` (an external OIDC issuer, or the embedded default's development
issuer); no header means anonymous. A token that fails is a 401 with a Bearer challenge,
never a silent downgrade to anonymous (the client would not learn why data is missing).
Routers take ``CurrentCaller``: its groups say what the caller may read (the database's row-level
security applies them, through ``vo.caller``) and its user owns the jobs it creates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from app.auth import ANONYMOUS, Caller, TokenVerifier
from app.errors import bearer_challenge
from vo.errors import AuthError
from vo.vosi import SSO_TOKEN

__all__ = [
    "AuthOffer", "CurrentCaller", "Offer", "auth_offer", "current_identity",
]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        # Basic credentials and the like are not ours to judge: the caller stays anonymous
        return None
    token = token.strip()
    if not token:
        raise AuthError("empty bearer token", token_error="invalid_request")
    return token


async def current_identity(request: Request) -> Caller:
    """The caller's identity (cached on the request, so every dependency sees the same one)."""
    cached = getattr(request.state, "identity", None)
    if cached is not None:
        return cached
    token = _bearer(request)
    identity = ANONYMOUS
    if token is not None:
        verifier: TokenVerifier | None = getattr(request.app.state, "verifier", None)
        if verifier is None:
            raise AuthError("this service is configured without an identity provider and accepts no tokens")
        identity = await verifier.verify(token)
    request.state.identity = identity
    return identity


#: the caller, for the reads made on their behalf (:mod:`vo.caller`)
CurrentCaller = Annotated[Caller, Depends(current_identity)]


@dataclass(frozen=True)
class AuthOffer:
    """How a client may authenticate here, for capabilities documents and their headers."""

    #: VOResource security methods of the data interfaces: anonymous (None), and bearer tokens when accepted
    security: tuple[str | None, ...]
    #: AuthVO section 4.1 (optional authentication): a 200 from capabilities carries the challenge
    headers: dict[str, str]


async def auth_offer(request: Request) -> AuthOffer:
    """What the service accepts: bearer tokens when a verifier is configured, else only anonymous use."""
    if getattr(request.app.state, "verifier", None) is None:
        return AuthOffer((), {})
    return AuthOffer((None, SSO_TOKEN), {"WWW-Authenticate": bearer_challenge()})


Offer = Annotated[AuthOffer, Depends(auth_offer)]
