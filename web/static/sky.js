// The sky view: Aladin Lite on the service's own HiPS, dataset footprints from SIA and catalogue
// sources from TAP for the visible region, a source's row and SED on click.

import A from "/static/vendor/aladin.js";
import { ServiceError, get, tap, votableRows } from "./api.js";
import { showSource } from "./sed.js";

const COLOURS = ["#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#1f77b4"];
const state = { aladin: null, footprints: 0, sources: 0, overlays: [], catalogue: null, pending: null };
window.vlkbPortal = state;  // what the browser tests (and a curious user's console) can look at

function status(text) { document.getElementById("sky-status").textContent = text; }

// The HiPS list (HiPS 1.0 section 4.4.4) of the HiPS this caller may see.
async function hipsList() {
  const text = await (await get("/hips/list")).text();
  return text.split(/\n\s*\n/).map((block) => Object.fromEntries(
    block.split("\n").filter((l) => l.includes("=")).map((l) => {
      const i = l.indexOf("=");
      return [l.slice(0, i).trim(), l.slice(i + 1).trim()];
    }))).filter((r) => r.hips_service_url);
}

// The visible region as an ICRS circle (SIA and ADQL both take ICRS), capped so a zoomed-out view stays cheap.
function region() {
  const [ra, dec] = state.aladin.getRaDec();
  const [w, h] = state.aladin.getFov();
  return { ra, dec, r: Math.min(Math.max(w, h) * 0.75, 5) };
}

function polygon(text) {
  const v = text.trim().split(/\s+/).map(Number);
  const pts = [];
  for (let i = 0; i + 1 < v.length; i += 2) pts.push([v[i], v[i + 1]]);
  return pts;
}

async function loadFootprints(signal) {
  for (const o of state.overlays) o.removeAll();
  state.footprints = 0;
  const legend = document.getElementById("footprint-legend");
  legend.textContent = "";
  if (!document.getElementById("show-footprints").checked) return;
  const { ra, dec, r } = region();
  const resp = await get("/sia/query", {
    POS: `CIRCLE ${ra} ${dec} ${r}`, MAXREC: "500", RESPONSEFORMAT: "votable/td" }, { signal });
  const rows = votableRows(await resp.text());
  const bySurvey = new Map();
  for (const row of rows) {
    if (!row.s_region) continue;
    const key = row.obs_collection;
    if (!bySurvey.has(key)) bySurvey.set(key, []);
    bySurvey.get(key).push(row);
  }
  let i = 0;
  for (const [survey, items] of bySurvey) {
    const colour = COLOURS[i++ % COLOURS.length];
    let overlay = state.overlays.find((o) => o.name === `footprints: ${survey}`);
    if (!overlay) {
      overlay = A.graphicOverlay({ color: colour, lineWidth: 2, name: `footprints: ${survey}` });
      state.aladin.addOverlay(overlay);
      state.overlays.push(overlay);
    }
    for (const row of items) {
      overlay.add(A.polygon(polygon(row.s_region), { color: colour }));
      state.footprints += 1;
    }
    const item = document.createElement("span");
    item.className = "legend";
    item.style.borderColor = colour;
    item.textContent = `${survey} (${items.length})`;
    legend.append(item);
  }
}

async function loadCatalogue(signal) {
  const table = document.getElementById("catalogue-select").value;
  if (state.catalogue) state.catalogue.removeAll();
  state.sources = 0;
  if (!table) return;
  const { ra, dec, r } = region();
  const { columns, rows } = await tap(
    `SELECT TOP 3000 designation, glon, glat, ra, dec, flux, err_flux, snr FROM ${table} ` +
    `WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', ${ra}, ${dec}, ${r}))`, { signal });
  if (!state.catalogue) {
    state.catalogue = A.catalog({ name: "sources", sourceSize: 8, color: "#00e5ff", shape: "circle" });
    state.aladin.addCatalog(state.catalogue);
  }
  const at = Object.fromEntries(columns.map((c, i) => [c, i]));
  state.catalogue.addSources(rows.map((row) => A.source(row[at.ra], row[at.dec], {
    ...Object.fromEntries(columns.map((c, i) => [c, row[i]])), table })));
  state.sources = rows.length;
}

async function refresh() {
  if (state.pending) state.pending.abort();
  const ctl = new AbortController();
  state.pending = ctl;
  status("loading…");
  try {
    await Promise.all([loadFootprints(ctl.signal), loadCatalogue(ctl.signal)]);
    status(`${state.footprints} datasets, ${state.sources} sources in view`);
    document.getElementById("sky-status").dataset.ready = "yes";
  } catch (e) {
    if (e.name === "AbortError") return;
    status(e instanceof ServiceError ? `error: ${e.message}` : `error: ${e}`);
  }
}

function debounce(fn, ms) {
  let t = null;
  return () => { clearTimeout(t); t = setTimeout(fn, ms); };
}

export async function start() {
  await A.init;
  const list = await hipsList();
  const select = document.getElementById("hips-select");
  for (const rec of list) {
    const opt = document.createElement("option");
    opt.value = rec.hips_service_url;
    opt.textContent = rec.obs_title || rec.ID;
    select.append(opt);
  }
  const first = list.find((r) => r.hips_service_url.endsWith("/hi-gal-70um")) || list[0];
  if (first) select.value = first.hips_service_url;
  const surveyFor = (url) => {
    const rec = list.find((r) => r.hips_service_url === url);
    return A.HiPS(url, { name: rec.obs_title, url, cooFrame: "galactic", maxOrder: Number(rec.hips_order),
                         imgFormat: new URLSearchParams(location.search).get("fmt") || "png" });
  };
  state.aladin = A.aladin("#aladin", {
    cooFrame: "galactic", target: "0 +0", fov: 2.5, projection: "SIN", log: false, samp: false,
    survey: first ? surveyFor(first.hips_service_url) : undefined,
    hipsList: list.map((r) => ({ id: r.ID, name: r.obs_title, url: r.hips_service_url })),
    showSimbadPointerControl: false, showShareControl: false, showContextMenu: false, showLayersControl: false,
    showSettingsControl: false, showCooGridControl: true, showProjectionControl: false,
  });
  select.addEventListener("change", () => state.aladin.setBaseImageLayer(surveyFor(select.value)));
  state.aladin.on("objectClicked", (obj) => { if (obj && obj.data) showSource(obj.data); });
  const later = debounce(refresh, 400);
  state.aladin.on("positionChanged", later);
  state.aladin.on("zoomChanged", later);
  document.getElementById("show-footprints").addEventListener("change", refresh);
  document.getElementById("catalogue-select").addEventListener("change", refresh);
  await refresh();
}
