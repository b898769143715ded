"""The development issuer's login (authorization code + PKCE, RFC 7636) over HTTP, as the portal uses it.

The token it ends with is checked by what it opens (the restricted survey's HiPS list entry), and the
flow's refusals: a wrong verifier, a code used twice, a redirect away from the service, no S256.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import warnings
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from app.settings import Settings

CLIENT = "vlkb-portal"


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def _login(http: httpx.Client, base: str, challenge: str, user: str = "alice",
           groups: str = "survey-team") -> str:
    auth = {"response_type": "code", "client_id": CLIENT, "redirect_uri": f"{base}/", "state": "st-1",
            "code_challenge": challenge, "code_challenge_method": "S256"}
    form = http.get("/dev-issuer/authorize", params=auth)
    assert form.status_code == 200 and "Development login" in form.text and 'name="code_challenge"' in form.text
    back = http.post("/dev-issuer/authorize", data={**auth, "username": user, "groups": groups})
    assert back.status_code == 303
    where = urlsplit(back.headers["location"])
    assert f"{where.scheme}://{where.netloc}{where.path}" == f"{base}/"
    query = parse_qs(where.query)
    assert query["state"] == ["st-1"]
    return query["code"][0]


def _token(http: httpx.Client, base: str, code: str, verifier: str) -> httpx.Response:
    return http.post("/dev-issuer/token", data={"grant_type": "authorization_code", "code": code,
                                                "code_verifier": verifier, "client_id": CLIENT,
                                                "redirect_uri": f"{base}/"})


def test_code_and_verifier_give_a_token_with_the_groups_typed(server) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        conf = http.get("/dev-issuer/.well-known/openid-configuration").json()
        assert conf["authorization_endpoint"] == f"{server.url}/dev-issuer/authorize"
        assert conf["code_challenge_methods_supported"] == ["S256"]
        verifier, challenge = _pkce()
        code = _login(http, server.url, challenge)
        answer = _token(http, server.url, code, verifier)
        assert answer.status_code == 200, answer.text
        token = answer.json()["access_token"]
        assert answer.json()["token_type"] == "Bearer"
        # the token is the service's own: it names alice and opens the restricted survey's rows
        tap = {"LANG": "ADQL", "FORMAT": "csv",
               "QUERY": "SELECT count(*) FROM ivoa.obscore WHERE obs_collection = 'MeerKAT-private'"}
        member = http.post("/tap/sync", data=tap, headers={"Authorization": f"Bearer {token}"})
        anonymous = http.post("/tap/sync", data=tap)
        assert int(member.text.split()[-1]) > 0 and int(anonymous.text.split()[-1]) == 0
        # a code is spent once
        again = _token(http, server.url, code, verifier)
        assert again.status_code == 400 and "invalid_grant" in again.text


def test_a_wrong_verifier_is_refused_and_spends_the_code(server) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        verifier, challenge = _pkce()
        code = _login(http, server.url, challenge)
        wrong = _token(http, server.url, code, _pkce()[0])
        assert wrong.status_code == 400 and "code_verifier" in wrong.text
        assert _token(http, server.url, code, verifier).status_code == 400


@pytest.mark.parametrize(("change", "word"), [
    ({"redirect_uri": "http://evil.example/"}, "redirect_uri"),
    ({"code_challenge_method": "plain"}, "S256"),
    ({"response_type": "token"}, "response_type"),
    ({"code_challenge": "short"}, "code_challenge"),
])
def test_authorization_requests_outside_the_flow_are_refused(server, change, word) -> None:
    auth = {"response_type": "code", "client_id": CLIENT, "redirect_uri": f"{server.url}/", "state": "s",
            "code_challenge": _pkce()[1], "code_challenge_method": "S256", **change}
    resp = httpx.get(server.url + "/dev-issuer/authorize", params=auth, timeout=60)
    assert resp.status_code == 400 and word in resp.text


def test_no_login_routes_without_the_development_issuer(database) -> None:
    settings = Settings(home=database.home, oidc_issuer="https://issuer.invalid/realms/x")
    assert not settings.dev_issuer
    from app.main import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FastAPI warns of operation ids shared by GET and POST routes
        paths = set(create_app(settings).openapi()["paths"])
    assert "/hips/list" in paths and not any(p.startswith("/dev-issuer") for p in paths)


def test_a_code_issued_by_one_process_is_redeemed_once_by_another(tmp_path) -> None:
    """`vlkb serve` runs several processes: the login and the token request may reach different ones. Two
    stores on one directory stand for two processes; the code works across them, once, and is not on disk."""
    from app.dev_issuer import AuthCodes
    from vo.errors import UsageError

    verifier, challenge = _pkce()
    login, token = AuthCodes(tmp_path / "codes"), AuthCodes(tmp_path / "codes")
    code = login.issue("alice", ("survey-team",), CLIENT, "http://h/", challenge)
    assert all(code not in p.read_text() and code not in p.name for p in (tmp_path / "codes").iterdir())
    grant = token.redeem(code, verifier, CLIENT, "http://h/")
    assert (grant.user, grant.groups) == ("alice", ("survey-team",))
    for store in (login, token):
        with pytest.raises(UsageError, match="used or expired"):
            store.redeem(code, verifier, CLIENT, "http://h/")
    expired = AuthCodes(tmp_path / "codes", ttl=-1).issue("bob", (), CLIENT, "http://h/", challenge)
    with pytest.raises(UsageError, match="used or expired"):
        token.redeem(expired, verifier, CLIENT, "http://h/")
