// The sky view: Aladin Lite on the service's own HiPS, dataset footprints from SIA and catalogue
// sources from TAP for the visible region, a source's row and SED on click.

import A from "/static/vendor/aladin.js";
import { ServiceError, get, tap, votableRows } from "./api.js";
import { onSkyClick, startRegion } from "./region.js";
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

// (a crowded view shows its 3000 brightest sources)
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

// The band-merged catalogue has Galactic positions only (those of its reference band, suffix ft)
const MERGED = "compactsources.sed_view_final";

async function loadCatalogue(signal) {
  const table = document.getElementById("catalogue-select").value;
  if (state.catalogue) state.catalogue.removeAll();
  state.sources = 0;
  if (!table) return;
  const { ra, dec, r } = region();
  let columns, rows;
  if (table === MERGED) {
    const [l, b] = icrsToGal(ra, dec);
    ({ columns, rows } = await tap(
      `SELECT TOP 3000 designationft AS designation, glonft AS glon, glatft AS glat, distance FROM ${MERGED} ` +
      `WHERE 1 = CONTAINS(POINT('GALACTIC', glonft, glatft), CIRCLE('GALACTIC', ${l}, ${b}, ${r}))`, { signal }));
  } else {
    ({ columns, rows } = await tap(
      `SELECT TOP 3000 designation, glon, glat, ra, dec, flux, err_flux, snr FROM ${table} ` +
      `WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', ${ra}, ${dec}, ${r})) ORDER BY flux DESC`, { signal }));
  }
  if (!state.catalogue) {
    state.catalogue = A.catalog({ name: "sources", sourceSize: 8, color: "#00e5ff", shape: "circle" });
    state.aladin.addCatalog(state.catalogue);
  }
  const at = Object.fromEntries(columns.map((c, i) => [c, i]));
  state.catalogue.addSources(rows.map((row) => {
    const [sra, sdec] = table === MERGED ? galToIcrs(row[at.glon], row[at.glat]) : [row[at.ra], row[at.dec]];
    return A.source(sra, sdec, { ...Object.fromEntries(columns.map((c, i) => [c, row[i]])), table });
  }));
  state.sources = rows.length;
}

// Galactic <-> ICRS (the IAU 1958 rotation as realised for ICRS, Hipparcos vol. 1 sec. 1.5.3); hand-written
// because Aladin Lite takes polygons in ICRS only and exposes no frame conversion.
const G2E = [[-0.0548755604, 0.4941094279, -0.8676661490], [-0.8734370902, -0.4448296300, -0.1980763734],
  [-0.4838350155, 0.7469822445, 0.4559837762]];
const RAD = Math.PI / 180;
function rotate(m, lon, lat, transpose) {
  const v = [Math.cos(lat * RAD) * Math.cos(lon * RAD), Math.cos(lat * RAD) * Math.sin(lon * RAD), Math.sin(lat * RAD)];
  const w = [0, 1, 2].map((i) => [0, 1, 2].reduce((s, j) => s + (transpose ? m[j][i] : m[i][j]) * v[j], 0));
  return [((Math.atan2(w[1], w[0]) / RAD) + 360) % 360, Math.asin(Math.max(-1, Math.min(1, w[2]))) / RAD];
}
const galToIcrs = (l, b) => rotate(G2E, l, b, false);
const icrsToGal = (ra, dec) => rotate(G2E, ra, dec, true);

// Filament branches near the view, drawn as their spines (pgSphere paths in Galactic coordinates).
async function loadBranches(signal) {
  if (state.branches) state.branches.removeAll();
  state.branchCount = 0;
  if (!document.getElementById("show-filaments").checked) return;
  const { ra, dec, r } = region();
  const [l, b] = icrsToGal(ra, dec);
  const lo = (l - r + 360) % 360, hi = (l + r) % 360;
  const lon = lo < hi ? `glon_branch BETWEEN ${lo} AND ${hi}` : `(glon_branch >= ${lo} OR glon_branch <= ${hi})`;
  const { rows } = await tap(`SELECT TOP 2000 idbranch, idfil_mos, spine FROM filaments.branches ` +
                             `WHERE ${lon} AND glat_branch BETWEEN ${b - r} AND ${b + r}`, { signal });
  if (!state.branches) {
    state.branches = A.graphicOverlay({ color: "#ffd400", lineWidth: 2, name: "filament branches" });
    state.aladin.addOverlay(state.branches);
  }
  for (const [, , spine] of rows) {
    if (!spine || spine.length < 4) continue;
    const pts = [];
    for (let i = 0; i + 1 < spine.length; i += 2) pts.push(galToIcrs(spine[i], spine[i + 1]));
    state.branches.add(A.polyline(pts, { color: "#ffd400" }));
    state.branchCount += 1;
  }
}

// Filament and bubble outlines near the view (pgSphere polygons in Galactic coordinates, DALI lists in JSON).
const OUTLINES = {
  filaments: { table: "filaments.filaments", id: "idfil_mos", lon: "glon", lat: "glat", colour: "#ff66cc",
               box: "show-outlines-filaments" },
  bubbles: { table: "filaments.bubbles", id: "idbubble", lon: "glon_cen", lat: "glat_cen", colour: "#7CFC00",
             box: "show-bubbles" },
};

async function loadOutlines(kind, signal) {
  const o = OUTLINES[kind];
  state.outlines = state.outlines || {};
  if (state.outlines[kind]) state.outlines[kind].removeAll();
  state[`${kind}Count`] = 0;
  if (!document.getElementById(o.box).checked) return;
  const { ra, dec, r } = region();
  const [l, b] = icrsToGal(ra, dec);
  const { rows } = await tap(`SELECT TOP 2000 ${o.id}, contour_poly FROM ${o.table} WHERE 1 = CONTAINS(` +
                             `POINT('GALACTIC', ${o.lon}, ${o.lat}), CIRCLE('GALACTIC', ${l}, ${b}, ${r}))`, { signal });
  if (!state.outlines[kind]) {
    state.outlines[kind] = A.graphicOverlay({ color: o.colour, lineWidth: 2, name: kind });
    state.aladin.addOverlay(state.outlines[kind]);
  }
  for (const [, poly] of rows) {
    if (!poly || poly.length < 6) continue;
    const pts = [];
    for (let i = 0; i + 1 < poly.length; i += 2) pts.push(galToIcrs(poly[i], poly[i + 1]));
    state.outlines[kind].add(A.polygon(pts, { color: o.colour }));
    state[`${kind}Count`] += 1;
  }
}

async function refresh() {
  if (state.pending) state.pending.abort();
  const ctl = new AbortController();
  state.pending = ctl;
  document.getElementById("sky-status").dataset.ready = "no";
  status("loading…");
  try {
    await Promise.all([loadFootprints(ctl.signal), loadCatalogue(ctl.signal), loadBranches(ctl.signal),
                       loadOutlines("filaments", ctl.signal), loadOutlines("bubbles", ctl.signal)]);
    status(`${state.footprints} datasets, ${state.sources} sources` +
           (state.branchCount ? `, ${state.branchCount} filament branches` : "") +
           (state.filamentsCount ? `, ${state.filamentsCount} filaments` : "") +
           (state.bubblesCount ? `, ${state.bubblesCount} bubbles` : "") + " in view");
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
  state.aladin.on("objectClicked", (obj) => {
    if (obj && obj.data && !window.vlkbRegion.drawing) showSource(obj.data);
  });
  state.aladin.on("click", onSkyClick);
  startRegion(A, state.aladin);
  const later = debounce(refresh, 400);
  state.aladin.on("positionChanged", later);
  state.aladin.on("zoomChanged", later);
  document.getElementById("show-footprints").addEventListener("change", refresh);
  document.getElementById("catalogue-select").addEventListener("change", refresh);
  document.getElementById("show-filaments").addEventListener("change", refresh);
  document.getElementById("show-outlines-filaments").addEventListener("change", refresh);
  document.getElementById("show-bubbles").addEventListener("change", refresh);
  await refresh();
}
