// The portal's entry: tabs, login, and each view started when its tab is first shown.

import { setToken, token } from "./api.js";

const started = new Set();
const views = {
  sky: () => import("./sky.js").then((m) => m.start()),
  adql: () => import("./adql.js").then((m) => m.start()),
  cube: () => import("./cube.js").then((m) => m.start()),
  jobs: () => import("./jobs.js").then((m) => m.start()),
  about: async () => {},
};

function show(name) {
  for (const b of document.querySelectorAll("#tabs button")) b.setAttribute("aria-selected", b.dataset.tab === name);
  for (const s of document.querySelectorAll("section.tab")) s.hidden = s.id !== `tab-${name}`;
  if (!started.has(name)) {
    started.add(name);
    views[name]().catch((e) => console.warn(`the ${name} view failed to start:`, e));
  }
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
}

function whoAmI() {
  const t = token();
  let who = "anonymous";
  if (t) {
    try { who = JSON.parse(atob(t.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).sub || "token user"; }
    catch (e) { who = "token user"; }
  }
  document.getElementById("who").textContent = who;
  document.getElementById("login-button").hidden = !!t;
  document.getElementById("token-button").hidden = !!t;
  document.getElementById("logout-button").hidden = !t;
}

for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => show(b.dataset.tab));

// Login with the configured OIDC issuer: the authorization-code flow with PKCE (RFC 7636, S256), the portal
// being a public client. The verifier and state wait in sessionStorage while the browser is at the issuer;
// the token ends in sessionStorage (this tab only) and goes out as a Bearer header.
const PENDING = "vlkb.pkce";
const b64url = (bytes) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const redirectUri = () => `${location.origin}${location.pathname}`;

async function oidcLogin() {
  const conf = await (await fetch(document.body.dataset.oidcDiscovery)).json();
  const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  const state = b64url(crypto.getRandomValues(new Uint8Array(16)));
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, tokenEndpoint: conf.token_endpoint,
                                                   redirect: redirectUri(), hash: location.hash }));
  const url = new URL(conf.authorization_endpoint, location.href);
  url.search = new URLSearchParams({ response_type: "code", client_id: document.body.dataset.oidcClient,
    redirect_uri: redirectUri(), scope: "openid", state, code_challenge: b64url(new Uint8Array(digest)),
    code_challenge_method: "S256" }).toString();
  location.assign(url.href);
}

// Back from the issuer with ?code=&state=: the code and the verifier for a token (RFC 6749 4.1.3).
async function finishLogin() {
  const params = new URLSearchParams(location.search);
  if (!params.has("code") && !params.has("error")) return;
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
  sessionStorage.removeItem(PENDING);
  history.replaceState(null, "", location.pathname + (pending ? pending.hash : location.hash));
  const note = document.getElementById("login-note");
  if (params.has("error")) { note.textContent = `login refused: ${params.get("error")}`; return; }
  if (!pending || params.get("state") !== pending.state) { note.textContent = "login: unexpected answer, ignored"; return; }
  const body = new URLSearchParams({ grant_type: "authorization_code", code: params.get("code"),
    redirect_uri: pending.redirect, client_id: document.body.dataset.oidcClient, code_verifier: pending.verifier });
  const resp = await fetch(pending.tokenEndpoint, { method: "POST", body });
  if (!resp.ok) { note.textContent = "login failed at the token endpoint"; return; }
  setToken((await resp.json()).access_token);
}

document.getElementById("login-button").addEventListener("click", () => {
  if (document.body.dataset.oidcDiscovery) oidcLogin();
  else document.getElementById("login-dialog").showModal();
});
document.getElementById("token-button").addEventListener("click", () => document.getElementById("login-dialog").showModal());
document.getElementById("token-save").addEventListener("click", () => {
  setToken(document.getElementById("token-input").value.trim());
  location.reload();
});
document.getElementById("logout-button").addEventListener("click", () => { setToken(null); location.reload(); });
// the views start once a login that came back is finished, so their first requests carry the token
finishLogin().catch((e) => console.warn("login failed:", e)).finally(() => {
  whoAmI();
  const first = location.hash.slice(1);
  show(first in views ? first : "sky");
  window.addEventListener("hashchange", () => { const t = location.hash.slice(1); if (t in views) show(t); });
});
