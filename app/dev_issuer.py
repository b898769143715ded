"""The local development issuer of the embedded default: tokens for demos, never for production.

With no ``VLKB_OIDC_ISSUER`` and the private PostgreSQL cluster (the embedded default), the
service accepts tokens signed by a key kept in ``VLKB_HOME/dev-issuer/key.json`` (0600), which
``vlkb dev-token --user alice --groups survey-team`` mints. Whoever can read that file can be
anyone, which is fine for a demo on one's own machine and never for a deployment: the issuer
is off as soon as an external database or a real issuer is configured
(``Settings.dev_issuer``), and the service logs a warning at every start while it is on.

:class:`AuthCodes` keeps the one-time codes of the development login (``app/routers/dev_login.py``,
the OIDC authorization-code flow with PKCE the portal uses).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from app.auth import StaticKeys, TokenVerifier
from app.settings import Settings
from vo.errors import UsageError

__all__ = ["DEV_ISSUER", "AuthCodes", "Grant", "dev_verifier", "mint"]

#: the ``iss`` of development tokens: not a URL, so no client mistakes it for a real issuer
DEV_ISSUER = "urn:vlkb:dev-issuer"


def _key(home: Path) -> RSAKey:
    """The development signing key, created on first use."""
    path = home / "dev-issuer" / "key.json"
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


@dataclass(frozen=True)
class Grant:
    """What a code was issued for: who logged in, and the request it answers."""

    user: str
    groups: tuple[str, ...]
    client_id: str
    redirect_uri: str
    challenge: str
    expires: float


class AuthCodes:
    """One-time authorization codes (RFC 6749 4.1.2: short-lived, single use), shared by every process of
    the service through files in ``root`` (``VLKB_HOME/dev-issuer/codes``): ``vlkb serve`` runs several
    processes, and the token request may reach another one than the login did.

    A code is stored under the SHA-256 of its value (the code itself is never written) and spent by
    removing its file, which succeeds once whichever process tries. It is bound to its client, redirect
    URI and PKCE challenge (RFC 7636 4.6: ``BASE64URL(SHA256(verifier)) == challenge``); a wrong verifier
    spends the code too, so it cannot be guessed at.
    """

    def __init__(self, root: Path, ttl: float = 60.0, max_codes: int = 1000) -> None:
        self.root = root
        self.ttl = ttl
        self.max_codes = max_codes

    def _path(self, code: str) -> Path:
        return self.root / hashlib.sha256(code.encode()).hexdigest()

    def issue(self, user: str, groups: tuple[str, ...], client_id: str, redirect_uri: str, challenge: str) -> str:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        now = time.time()
        pending = 0
        for old in self.root.iterdir():
            try:
                if old.stat().st_mtime + self.ttl < now:
                    old.unlink()
                else:
                    pending += 1
            except FileNotFoundError:  # spent or cleared meanwhile by another process
                continue
        if pending >= self.max_codes:
            raise UsageError("too many pending logins; try again in a minute")
        code = secrets.token_urlsafe(32)
        grant = {"user": user, "groups": list(groups), "client_id": client_id, "redirect_uri": redirect_uri,
                 "challenge": challenge, "expires": now + self.ttl}
        fd = os.open(self._path(code), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(grant, out)
        return code

    def redeem(self, code: str, verifier: str, client_id: str, redirect_uri: str) -> Grant:
        path = self._path(code)
        try:
            stored = json.loads(path.read_text())
            path.unlink()  # spent: only one reader gets past this
        except (FileNotFoundError, ValueError):
            raise UsageError("code: unknown, used or expired authorization code (invalid_grant)") from None
        grant = Grant(stored["user"], tuple(stored["groups"]), stored["client_id"], stored["redirect_uri"],
                      stored["challenge"], stored["expires"])
        if grant.expires <= time.time():
            raise UsageError("code: unknown, used or expired authorization code (invalid_grant)")
        if (client_id, redirect_uri) != (grant.client_id, grant.redirect_uri):
            raise UsageError("client_id/redirect_uri: not those of the authorization request (invalid_grant)")
        if not 43 <= len(verifier) <= 128:
            raise UsageError("code_verifier: 43 to 128 characters (RFC 7636 4.1)")
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if not hmac.compare_digest(digest, grant.challenge):
            raise UsageError("code_verifier: does not match the code_challenge (invalid_grant)")
        return grant
