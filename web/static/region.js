// Draw a region → data: a circle drawn on the sky view with two clicks (centre, then a point on the edge),
// the datasets that cover it (SIA 2 with the circle), each with its preview and a SODA cutout download, and
// a button that starts a SODA async job (one cut per dataset, or one merge of them all) and follows it.
//
// Two clicks rather than Aladin Lite's own selection tool: its `select` mode hands back the catalogue
// sources inside the shape, not the shape, and a circle is what SIA's POS and SODA's CIRCLE take.

import { ServiceError, authHeaders, daliError, get, votableRows } from "./api.js";

const $ = (id) => document.getElementById(id);
export const regionState = {
  drawing: false, centre: null, circle: null, datasets: [], job: null, phase: null, finished: false };
window.vlkbRegion = regionState;
let A = null, aladin = null, overlay = null;
const RAD = Math.PI / 180;

// Angular distance (deg) between two ICRS positions (haversine, stable for small separations).
function separation(ra1, dec1, ra2, dec2) {
  const h = Math.sin((dec2 - dec1) * RAD / 2) ** 2 +
    Math.cos(dec1 * RAD) * Math.cos(dec2 * RAD) * Math.sin((ra2 - ra1) * RAD / 2) ** 2;
  return 2 * Math.asin(Math.min(1, Math.sqrt(h))) / RAD;
}

function say(text) { $("region-status").textContent = text; }

// The sky view's click (ICRS): the first click of a drawing is the centre, the second sets the radius.
export function onSkyClick(e) {
  if (!regionState.drawing || !e || e.isDragging || e.ra === undefined) return false;
  if (!regionState.centre) {
    regionState.centre = [e.ra, e.dec];
    say("click a point on the circle's edge");
    return true;
  }
  const [ra, dec] = regionState.centre;
  const r = separation(ra, dec, e.ra, e.dec);
  regionState.drawing = false;
  regionState.centre = null;
  $("region-draw").setAttribute("aria-pressed", "false");
  if (r > 0) setCircle(ra, dec, r);
  return true;
}

// A circle (ICRS, degrees) as the region: drawn, then its datasets listed.
export function setCircle(ra, dec, r) {
  regionState.circle = { ra, dec, r };
  if (!overlay) {
    overlay = A.graphicOverlay({ color: "#ff00ff", lineWidth: 2, name: "drawn region" });
    aladin.addOverlay(overlay);
  }
  overlay.removeAll();
  overlay.add(A.circle(ra, dec, r, { color: "#ff00ff" }));
  return listDatasets();
}

const circleText = () => {
  const { ra, dec, r } = regionState.circle;
  return `${ra.toFixed(6)} ${dec.toFixed(6)} ${r.toFixed(6)}`;
};

// A file of the service saved by the browser: fetched with the caller's token (a plain link cannot send it).
async function save(url, name) {
  const resp = await fetch(url, { headers: authHeaders() });
  if (!resp.ok) throw new ServiceError(resp.status, daliError(await resp.text()));
  const a = document.createElement("a");
  a.href = URL.createObjectURL(await resp.blob());
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

async function preview(img, ref) {
  try {
    const resp = await get(new URL(ref, `${location.origin}/`).pathname);
    img.src = URL.createObjectURL(await resp.blob());
  } catch (e) { img.alt = "no preview"; }
}

async function listDatasets() {
  const list = $("region-datasets");
  list.textContent = "";
  regionState.datasets = [];
  regionState.job = null;
  $("region-job").textContent = "";
  say("searching…");
  const resp = await get("/sia/query", { POS: `CIRCLE ${circleText()}`, MAXREC: "200", RESPONSEFORMAT: "votable/td" });
  const rows = votableRows(await resp.text());
  regionState.datasets = rows.map((r) => r.obs_publisher_did);
  const cut = `CIRCLE=${encodeURIComponent(circleText())}`;
  for (const row of rows) {
    const did = row.obs_publisher_did;
    const li = document.createElement("li");
    li.dataset.did = did;
    const pick = document.createElement("input");
    pick.type = "checkbox";
    pick.checked = true;
    pick.className = "region-pick";
    pick.value = did;
    const img = document.createElement("img");
    img.className = "preview";
    if (row.preview) preview(img, row.preview);
    const text = document.createElement("span");
    text.textContent = `${row.obs_collection} · ${row.obs_title || ""} (${row.dataproduct_type}) `;
    const link = document.createElement("a");
    link.className = "cutout";
    link.href = `/soda/sync?ID=${encodeURIComponent(did)}&${cut}`;
    link.textContent = "cutout (FITS)";
    link.addEventListener("click", (ev) => {
      ev.preventDefault();
      const name = `${did.split("/").pop().replace(/[^\w.-]+/g, "_").replace(/\.fits$/, "")}-cutout.fits`;
      save(link.href, name).catch((e) => say(`cutout failed: ${e.message}`));
    });
    li.append(pick, img, text, link);
    list.append(li);
  }
  say(`${rows.length} datasets cover the circle ${circleText()} (ICRS, deg)`);
  $("region-actions").hidden = rows.length === 0;
  return rows.length;
}

// SODA async (UWS 1.1): create and run in one POST (PHASE=RUN), then follow the phase until it ends.
async function startJob(merge) {
  const ids = [...document.querySelectorAll(".region-pick:checked")].map((e) => e.value);
  if (!ids.length || !regionState.circle) return;
  const body = new URLSearchParams();
  for (const id of ids) body.append("ID", id);
  body.set("CIRCLE", circleText());
  body.set("PHASE", "RUN");
  const list = merge ? "/soda/merge/async" : "/soda/async";
  const box = $("region-job");
  box.textContent = "starting…";
  const resp = await fetch(list, { method: "POST", body, headers: authHeaders() });
  if (!resp.ok) { box.textContent = `error: ${daliError(await resp.text())}`; return; }
  const job = new URL(resp.url).pathname;  // the 303 to the job was followed
  regionState.job = job;
  regionState.finished = false;
  for (;;) {
    const phase = (await (await get(`${job}/phase`)).text()).trim();
    regionState.phase = phase;
    box.textContent = `job ${job.split("/").pop()}: ${phase}`;
    box.dataset.phase = phase;
    if (["COMPLETED", "ERROR", "ABORTED"].includes(phase)) break;
    await new Promise((ok) => setTimeout(ok, 700));
  }
  if (regionState.phase === "ERROR") {
    box.textContent += ` (${daliError(await (await fetch(`${job}/error`, { headers: authHeaders() })).text())})`;
    regionState.finished = true;
    return;
  }
  const doc = new DOMParser().parseFromString(await (await get(`${job}/results`)).text(), "application/xml");
  const ul = document.createElement("ul");
  for (const r of doc.getElementsByTagNameNS("*", "result")) {
    const href = r.getAttributeNS("http://www.w3.org/1999/xlink", "href") || r.getAttribute("xlink:href");
    const a = document.createElement("a");
    a.href = href;
    a.className = "job-result";
    a.textContent = r.getAttribute("id");
    a.addEventListener("click", (ev) => {
      ev.preventDefault();
      save(href, r.getAttribute("id").includes(".") ? r.getAttribute("id") : `${r.getAttribute("id")}.xml`)
        .catch((e) => say(`download failed: ${e.message}`));
    });
    const li = document.createElement("li");
    li.append(a);
    ul.append(li);
  }
  box.append(ul);
  regionState.finished = true;
}

export function startRegion(lib, view) {
  A = lib;
  aladin = view;
  $("region-draw").addEventListener("click", () => {
    regionState.drawing = true;
    regionState.centre = null;
    $("region-draw").setAttribute("aria-pressed", "true");
    say("click the circle's centre on the sky");
  });
  $("region-cut").addEventListener("click", () => startJob(false).catch((e) => say(`job failed: ${e.message}`)));
  $("region-merge").addEventListener("click", () => startJob(true).catch((e) => say(`job failed: ${e.message}`)));
}
