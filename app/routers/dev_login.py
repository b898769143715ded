"""The development issuer's login, for the portal's OIDC authorization-code flow with PKCE (RFC 7636).

DEVELOPMENT ONLY: mounted by :func:`app.main.create_app` only when ``Settings.dev_issuer`` (the
embedded default: private database and no ``VLKB_OIDC_ISSUER``). Its login form asks for a user
name and groups and believes them: anyone who reaches it is whoever they type. With a real issuer
configured, or an external database, none of these routes exist, and ``vlkb check`` warns while
the development issuer is on.

- ``GET /dev-issuer/.well-known/openid-configuration``: the endpoints (OpenID Connect Discovery 1.0);
- ``GET /dev-issuer/authorize``: the login form for an authorization request (RFC 6749 4.1.1,
  ``code_challenge_method=S256`` required);
- ``POST /dev-issuer/authorize``: the form's answer: a redirect to ``redirect_uri`` with ``code`` and
  ``state``; the redirect must go back to this service (no open redirect);
- ``POST /dev-issuer/token``: ``grant_type=authorization_code`` with the code and its
  ``code_verifier``: a token minted by :func:`app.dev_issuer.mint` (joserfc, RS256).

Bad requests are DALI errors like every other 4xx of the service (the portal is the only client).
The pending codes are files under ``VLKB_HOME/dev-issuer/codes`` (:class:`app.dev_issuer.AuthCodes`),
so a token request may reach any of the service's processes.
"""

from __future__ import annotations

import html
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from app.deps import AppSettings, BaseUrl
from app.dev_issuer import DEV_ISSUER, AuthCodes, mint
from app.params import RequestParams
from app.settings import Settings
from vo.dali import DaliParams
from vo.errors import UsageError

__all__ = ["router"]

router = APIRouter(prefix="/dev-issuer", tags=["development issuer"])

_FORM = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Development login</title>
<link rel="icon" href="data:,"><link rel="stylesheet" href="/static/portal.css"></head>
<body><main><h1>Development login</h1>
<p class="error">Development issuer of the embedded default: whoever you type here is who you are.
Never exposed in production (a configured OIDC issuer or an external database turns it off).</p>
<form method="post" action="/dev-issuer/authorize">
$hidden
<p><label>User <input name="username" id="dev-user" value="alice" required
 pattern="[A-Za-z0-9_.@\\-]{1,64}"></label></p>
<p><label>Groups (comma-separated) <input name="groups" id="dev-groups" value=""></label></p>
<p><button id="dev-login" type="submit">Log in</button></p>
</form></main></body></html>"""


def _codes(settings: Settings) -> AuthCodes:
    """The pending codes, shared by the service's processes (files under ``VLKB_HOME``)."""
    return AuthCodes(settings.home / "dev-issuer" / "codes")


def _authorization(p: DaliParams, base: str) -> dict[str, str]:
    """The parameters of an authorization request, checked (RFC 6749 4.1.1, RFC 7636 4.3)."""
    if p.required("RESPONSE_TYPE", "give response_type=code") != "code":
        raise UsageError("response_type: only 'code' (the authorization-code flow) is supported")
    redirect = p.required("REDIRECT_URI", "give the redirect_uri to come back to")
    ours, there = urlsplit(base), urlsplit(redirect)
    if (there.scheme, there.netloc) != (ours.scheme, ours.netloc):
        raise UsageError("redirect_uri: the development issuer only redirects back to this service")
    if (p.single("CODE_CHALLENGE_METHOD") or "") != "S256":
        raise UsageError("code_challenge_method: S256 is required (PKCE, RFC 7636)")
    challenge = p.required("CODE_CHALLENGE", "give the PKCE code_challenge")
    if not 43 <= len(challenge) <= 128 or not all(c.isalnum() or c in "-._~" for c in challenge):
        raise UsageError("code_challenge: 43 to 128 characters of the base64url alphabet")
    return {"client_id": p.required("CLIENT_ID", "give the client_id"), "redirect_uri": redirect,
            "state": p.single("STATE") or "", "code_challenge": challenge}


@router.get("/.well-known/openid-configuration")
async def get_dev_issuer_configuration(base: BaseUrl) -> JSONResponse:
    """The development issuer's endpoints (OpenID Connect Discovery 1.0 section 3, the fields the portal reads)."""
    return JSONResponse({
        "issuer": DEV_ISSUER, "authorization_endpoint": f"{base}/dev-issuer/authorize",
        "token_endpoint": f"{base}/dev-issuer/token", "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code"], "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"], "vlkb_development_only": True,
    })


@router.get("/authorize", response_class=HTMLResponse)
async def get_dev_login(params: RequestParams, base: BaseUrl) -> HTMLResponse:
    """The development login form for an authorization request (its parameters carried as hidden fields)."""
    request = _authorization(DaliParams(params.values), base)
    hidden = "".join(f'<input type="hidden" name="{k}" value="{html.escape(v)}">' for k, v in request.items())
    hidden += '<input type="hidden" name="response_type" value="code">' \
              '<input type="hidden" name="code_challenge_method" value="S256">'
    return HTMLResponse(_FORM.replace("$hidden", hidden), headers={"Cache-Control": "no-store"})


@router.post("/authorize")
async def post_dev_login(params: RequestParams, base: BaseUrl, settings: AppSettings) -> RedirectResponse:
    """The login form's answer: back to the client with a one-time code (RFC 6749 4.1.2)."""
    p = DaliParams(params.values)
    auth = _authorization(p, base)
    user = p.required("USERNAME", "give a user name").strip()
    if not 1 <= len(user) <= 64 or not all(c.isalnum() or c in "_.@-" for c in user):
        raise UsageError("username: 1 to 64 letters, digits or _ . @ -")
    groups = tuple(g.strip() for g in (p.single("GROUPS") or "").split(",") if g.strip())
    code = _codes(settings).issue(user, groups, auth["client_id"], auth["redirect_uri"], auth["code_challenge"])
    sep = "&" if "?" in auth["redirect_uri"] else "?"
    query = urlencode({"code": code, "state": auth["state"]})
    return RedirectResponse(f"{auth['redirect_uri']}{sep}{query}", status_code=303)


@router.post("/token")
async def post_dev_token(params: RequestParams, settings: AppSettings) -> JSONResponse:
    """The token for a code and its PKCE verifier (RFC 6749 4.1.3, RFC 7636 4.5-4.6)."""
    p = DaliParams(params.values)
    if p.required("GRANT_TYPE", "give grant_type=authorization_code") != "authorization_code":
        raise UsageError("grant_type: only authorization_code is supported")
    grant = _codes(settings).redeem(
        p.required("CODE", "give the authorization code"), p.required("CODE_VERIFIER", "give the PKCE code_verifier"),
        p.required("CLIENT_ID", "give the client_id"), p.required("REDIRECT_URI", "give the redirect_uri"))
    ttl = 3600
    token = mint(settings, grant.user, grant.groups, ttl=ttl)
    return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": ttl},
                        headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
