"""A small OIDC issuer for the tests: discovery document and JWKS over real HTTP on loopback.

Keys are generated per run. ``rotate()`` publishes a new key and withdraws the old one, as
an identity provider does; tokens are minted here with any claims, key or algorithm the
access tests need (expired, wrong audience, forged signature, ``alg=none``).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

__all__ = ["TestIssuer"]


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


class TestIssuer:
    """An issuer at ``url`` whose current signing key is ``key``."""

    __test__ = False  # not a pytest test class

    def __init__(self, audience: str = "vlkb") -> None:
        self.audience = audience
        self._generation = 0
        self.key = self._new_key()
        self.jwks_fetches = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": issuer.url + "/jwks",
                            "id_token_signing_alg_values_supported": ["RS256"]}
                elif self.path == "/jwks":
                    issuer.jwks_fetches += 1
                    body = KeySet([issuer.key]).as_dict(private=False)
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def _new_key(self) -> RSAKey:
        self._generation += 1
        return RSAKey.generate_key(2048, parameters={"kid": f"test-{self._generation}"}, private=True)

    def rotate(self) -> RSAKey:
        """Publish a new signing key and withdraw the current one; returns the withdrawn key."""
        old, self.key = self.key, self._new_key()
        return old

    def claims(self, user: str, groups: list[str] | None = None, **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": self.url, "aud": self.audience, "sub": f"id-{user}", "preferred_username": user,
                  "iat": now, "nbf": now, "exp": now + 600}
        if groups is not None:
            claims["groups"] = groups
        claims.update(extra)
        return claims

    def token(self, user: str, groups: list[str] | None = None, *, key: RSAKey | None = None,
              **extra: Any) -> str:
        """A token signed with ``key`` (default: the current key) carrying the standard claims and ``extra``."""
        key = key or self.key
        return jwt.encode({"alg": "RS256", "kid": key.kid, "typ": "JWT"}, self.claims(user, groups, **extra), key)

    def forged(self, user: str, groups: list[str]) -> str:
        """A token naming the current key id but signed by another key."""
        other = RSAKey.generate_key(2048, parameters={"kid": self.key.kid}, private=True)
        return self.token(user, groups, key=other)

    def unsigned(self, user: str, groups: list[str]) -> str:
        """An ``alg=none`` token (RFC 7519 section 6): header and claims, empty signature."""
        return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(self.claims(user, groups))}."

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
