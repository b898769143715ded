// A clicked source: its catalogue row, and its band-merged SED (compactsources.sed_view_final) plotted
// log-log with error bars, with the best theoretical model of the ViaLactea SED fit (/sedmods/searchd)
// overplotted.

import uPlot from "/static/vendor/uPlot.esm.js";
import { ServiceError, get, tap } from "./api.js";

// sed_view_final's flux columns and their wavelengths (um)
const BANDS = [["2m_k", 2.16], ["34", 3.4], ["46", 4.6], ["12", 12], ["22", 22], ["24", 24], ["70", 70],
  ["160", 160], ["250", 250], ["350", 350], ["500", 500], ["870", 870], ["1100", 1100]];
let plot = null;
export const sedState = { points: 0, designation: null, fitPoints: 0, fit: null };
// the wavelengths (um) of the SED models' bands (compactsources.sed_models): only these points are fitted
const MODEL_WAVES = [3.4, 3.6, 4.5, 4.6, 5.8, 8, 12, 22, 24, 70, 100, 160, 250, 350, 500, 870, 1100];
//: distance (pc) assumed when the catalogue has none; the fit then lets it vary by a factor of 2
const DEFAULT_DISTANCE = 3000;
window.vlkbSed = sedState;

function details(row) {
  const box = document.getElementById("source-details");
  box.textContent = "";
  const table = document.createElement("table");
  for (const [k, v] of Object.entries(row)) {
    if (k === "table") continue;
    const tr = table.insertRow();
    tr.insertCell().textContent = k;
    tr.insertCell().textContent = typeof v === "number" ? Number(v.toPrecision(7)).toString() : String(v);
  }
  box.append(table);
}

function errorBars(u) {
  const ctx = u.ctx;
  const [xs, ys] = [u.data[0], u.data[1]];
  const errs = u.data[2];
  ctx.save();
  ctx.strokeStyle = "#d62728";
  ctx.lineWidth = 1.5;
  for (let i = 0; i < xs.length; i++) {
    if (ys[i] == null || errs[i] == null) continue;
    const x = u.valToPos(xs[i], "x", true);
    const lo = Math.max(ys[i] - errs[i], ys[i] * 0.01);
    ctx.beginPath();
    ctx.moveTo(x, u.valToPos(lo, "y", true));
    ctx.lineTo(x, u.valToPos(ys[i] + errs[i], "y", true));
    ctx.stroke();
  }
  ctx.restore();
}

// The best model of the ViaLactea SED fit (docs/vialactea.md): every point at a model band, errors as
// given (10 % of the flux where missing), all detections, equal band-group weights, no prefilter pivot;
// a known distance is kept fixed (prefilter 1), an unknown one starts at 3 kpc and may move by 2x
// (prefilter 0). Returns {wave, flux (Jy), chi2, d} or null when no point can be fitted.
async function bestModel(pts, distanceKpc) {
  const use = pts.filter(([wl]) => MODEL_WAVES.some((m) => Math.abs(m - wl) <= 0.01 * m))
    .sort((a, b) => b[0] - a[0]);  // longest wavelength first, as the client sends them
  if (!use.length) return null;
  const known = distanceKpc !== null && distanceKpc > 0;
  const list = (v) => `[${v.join(",")}]`;
  const arg = [list(use.map((p) => p[0])), list(use.map((p) => p[1])),
    list(use.map((p) => (p[2] !== null && p[2] > 0 ? p[2] : 0.1 * p[1]))), list(use.map(() => 1)),
    known ? distanceKpc * 1000 : DEFAULT_DISTANCE, known ? 1 : 0, "[1,1,1]", 0, "[]", 0].join("_");
  const answer = await (await get(`/sedmods/searchd?${encodeURIComponent(`'${arg}'`)}`)).json();
  if (!answer.data.length) return null;
  const at = Object.fromEntries(answer.columns.map((c, i) => [c, i]));
  const best = answer.data[0];
  return { wave: best[at.wmod], flux: best[at.fmod], chi2: best[at.chi2], d: best[at.d] };
}

export async function showSource(row) {
  details(row);
  // a band's source is found by its designation in that band; a band-merged one by its reference band's (ft)
  const band = (row.table || "").match(/band(\d+)um/) || (row.table === "compactsources.sed_view_final" ? [0, "ft"] : null);
  const el = document.getElementById("sed-plot");
  if (!band) return;
  const cols = BANDS.map(([b]) => `flux${b}, err_flux${b}`).join(", ") + ", distance";
  const designation = String(row.designation).replace(/'/g, "''");
  const { columns, rows } = await tap(
    `SELECT TOP 1 ${cols} FROM compactsources.sed_view_final WHERE designation${band[1]} = '${designation}'`);
  if (plot) { plot.destroy(); plot = null; }
  el.textContent = "";
  sedState.done = false;
  sedState.designation = row.designation;
  sedState.points = 0;
  sedState.fitPoints = 0;
  sedState.fit = null;
  if (!rows.length) { el.textContent = "no band-merged SED for this source"; sedState.done = true; return; }
  const at = Object.fromEntries(columns.map((c, i) => [c, i]));
  const pts = BANDS.map(([b, wl]) => [wl, rows[0][at[`flux${b}`]], rows[0][at[`err_flux${b}`]]])
    .filter(([, f]) => f !== null && f > 0);
  sedState.points = pts.length;
  el.dataset.points = String(pts.length);
  let model = null;
  try {
    model = await bestModel(pts, rows[0][at.distance]);
  } catch (e) {
    if (!(e instanceof ServiceError)) throw e;
    el.dataset.fitError = e.message;  // e.g. no model passes; the observed SED is still drawn
  }
  // one x axis for both series (uPlot's data model): the union of the observed and model wavelengths
  const modelPts = model ? model.wave.map((w, i) => [w, model.flux[i]]).filter(([, f]) => f !== null && f > 0) : [];
  const xs = [...new Set([...pts.map((p) => p[0]), ...modelPts.map((p) => p[0])])].sort((a, b) => a - b);
  const col = (list, k) => xs.map((x) => { const p = list.find((q) => q[0] === x); return p ? p[k] : null; });
  sedState.fitPoints = modelPts.length;
  sedState.fit = model;
  const series = [{}, { label: "flux", stroke: "#1f77b4", width: 0, points: { size: 7, fill: "#1f77b4" } },
    { label: "error", show: false }];
  if (model) {
    series.push({ label: `best model (chi2 ${model.chi2.toPrecision(3)}, d ${(model.d / 1000).toFixed(2)} kpc)`,
                  stroke: "#ff7f0e", width: 1.5, spanGaps: true, points: { show: false } });
  }
  const data = [xs, col(pts, 1), col(pts, 2)];
  if (model) data.push(col(modelPts, 1));
  plot = new uPlot({
    title: `SED of ${row.designation}`, width: 320, height: 260,
    scales: { x: { time: false, distr: 3 }, y: { distr: 3 } },
    axes: [{ label: "wavelength (um)" }, { label: "flux (Jy)" }],
    series, hooks: { draw: [errorBars] },
  }, data, el);
  sedState.plot = plot;
  sedState.done = true;
}
