"""Token checks that need no server: claims, algorithms, clock skew, and the verifier's key cache."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, RSAKey

from app.auth import JwksKeys, StaticKeys, TokenVerifier, read_groups
from app.settings import Settings
from tests.oidc_issuer import TestIssuer
from vo.errors import AuthError, TransientError

KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)


def verifier(**kw) -> TokenVerifier:
    options = {"audience": "vlkb", "algorithms": ["RS256", "HS256"], "groups_claim": "groups",
               "user_claim": "preferred_username", "leeway": 60, **kw}
    return TokenVerifier("https://issuer.example", StaticKeys(KeySet([KEY])), **options)


def token(key=KEY, alg: str = "RS256", **claims) -> str:
    now = int(time.time())
    body = {"iss": "https://issuer.example", "aud": "vlkb", "sub": "u-1", "exp": now + 300, **claims}
    return jwt.encode({"alg": alg, "kid": "k1"}, {k: v for k, v in body.items() if v is not None}, key)


def verify(tok: str, **kw):
    return asyncio.run(verifier(**kw).verify(tok))


@pytest.mark.parametrize(("claims", "path", "groups"), [
    ({"groups": ["b", "a", "a"]}, "groups", ("a", "b")),
    ({"groups": ["/survey-team", "/x/y"]}, "groups", ("survey-team", "x/y")),
    ({"groups": "a b,c"}, "groups", ("a", "b", "c")),
    ({"realm_access": {"roles": ["survey-team"]}}, "realm_access.roles", ("survey-team",)),
    ({"realm_access": {"roles": "nope"}}, "realm_access.other", ()),
    ({"groups": 42}, "groups", ()),
    ({}, "groups", ()),
])
def test_groups_claim(claims, path, groups) -> None:
    assert read_groups(claims, path) == groups


def test_user_and_groups() -> None:
    who = verify(token(preferred_username="alice", groups=["survey-team"]))
    assert who.user == "alice" and who.groups == ("survey-team",)
    assert verify(token(groups=["g"])).user == "u-1"  # no preferred_username: sub
    nested = verify(token(realm_access={"roles": ["r"]}), groups_claim="realm_access.roles")
    assert nested.groups == ("r",)


def test_clock_skew_is_tolerated_within_the_leeway_only() -> None:
    now = int(time.time())
    assert verify(token(exp=now - 20)).user == "u-1"
    with pytest.raises(AuthError, match="expired"):
        verify(token(exp=now - 120))
    with pytest.raises(AuthError):
        verify(token(nbf=now + 600))


@pytest.mark.parametrize("bad", ["", "abc", "a.b.c", "a.b", "ey.ey.ey", "\u00e9.x.y"])
def test_malformed_tokens(bad) -> None:
    with pytest.raises(AuthError):
        verify(bad)


def test_hmac_is_never_accepted_even_if_configured() -> None:
    # with HMAC, the issuer's public key would be the shared secret: anyone could sign
    secret = OctKey.import_key(b"x" * 32, {"kid": "k1"})
    with pytest.raises(AuthError):
        verify(token(key=secret, alg="HS256"))


def test_missing_or_wrong_claims() -> None:
    for claims in ({"aud": None}, {"iss": None}, {"exp": None}, {"aud": "other"}, {"iss": "https://other"}):
        with pytest.raises(AuthError):
            verify(token(**claims))


def test_jwks_cache_refetches_for_new_keys_but_not_for_every_unknown_kid() -> None:
    issuer = TestIssuer()

    async def scenario() -> None:
        async with httpx.AsyncClient() as client:
            keys = JwksKeys(issuer.url, client, refresh=3600, max_age=3600)
            v = TokenVerifier(issuer.url, keys, audience="vlkb", algorithms=["RS256"], groups_claim="groups",
                              user_claim="preferred_username", leeway=0)
            assert (await v.verify(issuer.token("alice", ["g"]))).groups == ("g",)
            assert (await v.verify(issuer.token("alice", ["g"]))).user == "alice"
            assert issuer.jwks_fetches == 1
            issuer.rotate()
            # the refresh interval has not passed: a key id we do not know is refused without a fetch
            with pytest.raises(AuthError, match="key"):
                await v.verify(issuer.token("alice", ["g"]))
            assert issuer.jwks_fetches == 1

    try:
        asyncio.run(scenario())
    finally:
        issuer.close()


def test_unreachable_issuer_is_a_transient_error() -> None:
    async def scenario() -> None:
        async with httpx.AsyncClient() as client:
            keys = JwksKeys("http://127.0.0.1:9", client, refresh=0, max_age=0)
            with pytest.raises(TransientError):
                await keys.keys("k1")

    asyncio.run(scenario())


def test_dev_issuer_only_in_the_embedded_default(tmp_path) -> None:
    assert Settings(home=tmp_path).dev_issuer
    assert not Settings(home=tmp_path, oidc_issuer="https://login.example.org").dev_issuer
    assert not Settings(home=tmp_path, database_url="postgresql://db.example.org/vlkb").dev_issuer
