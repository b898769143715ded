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
  document.getElementById("logout-button").hidden = !t;
}

for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => show(b.dataset.tab));
document.getElementById("login-button").addEventListener("click", () => document.getElementById("login-dialog").showModal());
document.getElementById("token-save").addEventListener("click", () => {
  setToken(document.getElementById("token-input").value.trim());
  location.reload();
});
document.getElementById("logout-button").addEventListener("click", () => { setToken(null); location.reload(); });
whoAmI();
const first = location.hash.slice(1);
show(first in views ? first : "sky");
window.addEventListener("hashchange", () => { const t = location.hash.slice(1); if (t in views) show(t); });
