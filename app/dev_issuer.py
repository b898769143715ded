"""The local development issuer of the embedded default: tokens for demos, never for production.

With no ``VLKB_OIDC_ISSUER`` and the private PostgreSQL cluster (the embedded default), the
service accepts tokens signed by a key kept in ``VLKB_HOME/dev-issuer/key.json`` (0600), which
``vlkb dev-token --user alice --groups survey-team`` mints. Whoever can read that file can be
anyone, which is fine for a demo on one's own machine and never for a deployment: the issuer
is off as soon as an external database or a real issuer is configured
(``Settings.dev_issuer``), and the service logs a warning at every start while it is on.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from app.auth import StaticKeys, TokenVerifier
from app.settings import Settings

__all__ = ["DEV_ISSUER", "dev_verifier", "mint"]

#: the ``iss`` of development tokens: not a URL, so no client mistakes it for a real issuer
DEV_ISSUER = "urn:vlkb:dev-issuer"


def _key_file(home: Path) -> Path:
    return home / "dev-issuer" / "key.json"


def _key(home: Path) -> RSAKey:
    """The development signing key, created on first use."""
    path = _key_file(home)
    if path.exists():
        return RSAKey.import_key(json.loads(path.read_text()))
    key = RSAKey.generate_key(2048, parameters={"kid": f"dev-{int(time.time())}", "use": "sig"}, private=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # created meanwhile by the server or another `vlkb dev-token`
        time.sleep(0.2)
        return RSAKey.import_key(json.loads(path.read_text()))
    with os.fdopen(fd, "w") as out:
        json.dump(key.as_dict(private=True), out)
    return key


def dev_verifier(settings: Settings) -> TokenVerifier:
    """The verifier of development tokens (only call when ``settings.dev_issuer``)."""
    public = RSAKey.import_key(_key(settings.home).as_dict(private=False))
    return TokenVerifier(
        DEV_ISSUER, StaticKeys(KeySet([public])), audience=settings.oidc_audience, algorithms=["RS256"],
        groups_claim="groups", user_claim="preferred_username", leeway=settings.oidc_leeway,
    )


def mint(settings: Settings, user: str, groups: tuple[str, ...] = (), ttl: int = 3600) -> str:
    """A development token for ``user`` in ``groups``, valid ``ttl`` seconds."""
    key = _key(settings.home)
    now = int(time.time())
    claims = {
        "iss": DEV_ISSUER, "aud": settings.oidc_audience, "sub": user, "preferred_username": user,
        "groups": list(groups), "iat": now, "nbf": now, "exp": now + ttl,
    }
    return jwt.encode({"alg": "RS256", "kid": key.kid, "typ": "JWT"}, claims, key)
