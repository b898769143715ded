"""Bearer tokens: who the caller is (user and groups), from an OIDC-issued JWT.

:class:`TokenVerifier` checks a token's signature against the issuer's keys, then its
issuer, audience and times, and reads the user and groups claims into an :class:`~vo.caller.Caller`.
Keys come from a :class:`KeySource`: :class:`JwksKeys` follows the issuer's discovery
document to its JWKS (cached; fetched again when a token names a key it has not seen, which
is how a key rotation arrives), :class:`StaticKeys` holds the development issuer's one key.

JWTs are checked with ``joserfc``: ``authlib.jose`` (named in the developers' guide) is
deprecated by its authors in favour of joserfc, from the same project, and warns on import.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import quote

import httpx
import structlog
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet

from vo.caller import ANONYMOUS, Caller
from vo.errors import AuthError, TransientError

__all__ = [
    "ANONYMOUS", "Caller", "JwksKeys", "KeySource", "StaticKeys", "TokenVerifier", "header_text", "read_groups",
]

log = structlog.get_logger("vlkb.auth")

#: algorithms a token may never use, whatever the settings say: unsigned, or signed with a shared secret
#: (the issuer's public keys would then be the secret)
_REFUSED_ALGORITHMS = {"none", "HS256", "HS384", "HS512"}
#: control characters (C0, DEL, C1): no user or group name has them, and they break what names go
#: into (HTTP headers, XML answers, PostgreSQL text, which cannot hold NUL at all)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
#: what stays as it is in a header value: visible ASCII but '%' (RFC 9110 section 5.5 field-vchar)
_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7f) if chr(c) != "%")


def header_text(name: str) -> str:
    """``name`` as an HTTP header value (``X-VO-Authenticated``): visible ASCII as it is, anything else
    (spaces, non-ASCII letters, ``%``) percent-encoded as UTF-8, the form of RFC 8187 section 3.2 without its
    charset prefix. Header values are ASCII in practice (RFC 9110 section 5.5), and a user whose name
    is in another script must still be answered; ``urllib.parse.unquote`` gives the name back."""
    return quote(name, safe=_HEADER_SAFE)




class KeySource(Protocol):
    """The signing keys of one issuer."""

    async def keys(self, kid: str | None) -> KeySet:
        """The current key set; one that holds ``kid`` if the issuer has it."""
        ...


class StaticKeys:
    """A fixed key set (the development issuer's key, read from ``VLKB_HOME``)."""

    def __init__(self, keyset: KeySet) -> None:
        self._keyset = keyset

    async def keys(self, kid: str | None) -> KeySet:
        return self._keyset


class JwksKeys:
    """The issuer's JWKS, found through its OIDC discovery document and cached.

    Fetched at first use, again after ``max_age`` seconds, and again when a token names a key
    id the cached set lacks (the issuer rotated its keys) but at most once every ``refresh``
    seconds, so a stream of tokens with made-up key ids cannot make us hammer the issuer.
    """

    def __init__(self, issuer: str, client: httpx.AsyncClient, *, refresh: float, max_age: float) -> None:
        self.issuer = issuer.rstrip("/")
        self._client = client
        self._refresh = refresh
        self._max_age = max_age
        self._keyset: KeySet | None = None
        self._fetched = float("-inf")
        self._lock = asyncio.Lock()

    def _has(self, kid: str | None) -> bool:
        return self._keyset is not None and (kid is None or any(k.kid == kid for k in self._keyset.keys))

    async def keys(self, kid: str | None) -> KeySet:
        async with self._lock:
            age = time.monotonic() - self._fetched
            if self._keyset is None or age > self._max_age or (not self._has(kid) and age > self._refresh):
                self._keyset = await self._fetch()
                self._fetched = time.monotonic()
            return self._keyset

    async def _fetch(self) -> KeySet:
        try:
            meta = await self._get_json(f"{self.issuer}/.well-known/openid-configuration")
            if meta.get("issuer", "").rstrip("/") != self.issuer:
                # OIDC Discovery 1.0 section 4.3: the document must name the issuer it was fetched for
                raise ValueError(f"discovery document names issuer {meta.get('issuer')!r}")
            jwks = await self._get_json(str(meta["jwks_uri"]))
            keyset = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
        except (httpx.HTTPError, ValueError, KeyError, TypeError, JoseError) as exc:
            log.error("issuer keys unavailable", issuer=self.issuer, error=str(exc))
            raise TransientError("the token issuer's keys cannot be fetched; try again later") from exc
        log.info("issuer keys fetched", issuer=self.issuer, kids=[k.kid for k in keyset.keys])
        return keyset

    async def _get_json(self, url: str) -> dict[str, Any]:
        response = await self._client.get(url, timeout=10)
        response.raise_for_status()
        data = response.json()
        if not isinstance(data, dict):
            raise ValueError(f"{url}: not a JSON object")
        return data


def read_groups(claims: Mapping[str, Any], path: str) -> tuple[str, ...]:
    """The groups at the dotted ``path`` of ``claims``: a list, or one space/comma separated string.

    Keycloak's group mapper writes full paths (``/survey-team``); the leading slash is dropped
    so policies name groups the same way whichever mapper is used.
    """
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return ()
        value = value[part]
    if isinstance(value, str):
        items: Sequence[Any] = value.replace(",", " ").split()
    elif isinstance(value, list | tuple):
        items = value
    else:
        return ()
    groups = (g.lstrip("/") for g in items if isinstance(g, str))
    return tuple(sorted({g for g in groups if g}))


class TokenVerifier:
    """Checks bearer tokens of one issuer and turns them into identities."""

    def __init__(self, issuer: str, keys: KeySource, *, audience: str, algorithms: Sequence[str],
                 groups_claim: str, user_claim: str, leeway: int) -> None:
        self.issuer = issuer
        self._keys = keys
        self._algorithms = [a for a in algorithms if a not in _REFUSED_ALGORITHMS]
        self._groups_claim = groups_claim
        self._user_claim = user_claim
        self._claims = jwt.JWTClaimsRegistry(
            leeway=leeway,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
        )

    async def verify(self, token: str) -> Caller:
        """The identity ``token`` proves; AuthError (401) saying why when it proves none."""
        kid = _header_kid(token)
        keyset = await self._keys.keys(kid)
        if kid is not None and not any(k.kid == kid for k in keyset.keys):
            raise AuthError("the token is signed with a key the issuer does not publish")
        try:
            decoded = jwt.decode(token, keyset, algorithms=self._algorithms)
            self._claims.validate(decoded.claims)
        except ExpiredTokenError:
            raise AuthError("the token has expired") from None
        except BadSignatureError:
            raise AuthError("the token's signature is not valid") from None
        except (InvalidClaimError, MissingClaimError) as exc:
            raise AuthError(f"the token was not issued for this service: {exc.description}") from None
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise AuthError(f"the token cannot be used: {getattr(exc, 'description', None) or exc}") from None
        claims = decoded.claims
        user = claims.get(self._user_claim) or claims.get("sub")
        if not isinstance(user, str) or not user:
            raise AuthError("the token names no user (no sub claim)")
        if _CONTROL.search(user):
            raise AuthError("the token's user name contains control characters")
        groups = read_groups(claims, self._groups_claim)
        if any(_CONTROL.search(g) for g in groups):
            raise AuthError("the token's groups contain a name with control characters")
        return Caller(user=user, groups=groups)


def _header_kid(token: str) -> str | None:
    """The ``kid`` of the token's protected header, or None; AuthError for what is not a JWS at all."""
    from joserfc.jws import extract_compact

    try:
        obj = extract_compact(token.encode("ascii"))
    except (JoseError, ValueError, UnicodeError) as exc:
        raise AuthError(f"the token is not a signed JWT: {getattr(exc, 'description', None) or exc}") from None
    kid = obj.protected.get("kid")
    return kid if isinstance(kid, str) else None
