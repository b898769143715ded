// A clicked source: its catalogue row, and its band-merged SED (compactsources.sed_view_final) plotted
// log-log with error bars.

import uPlot from "/static/vendor/uPlot.esm.js";
import { tap } from "./api.js";

// sed_view_final's flux columns and their wavelengths (um)
const BANDS = [["2m_k", 2.16], ["34", 3.4], ["46", 4.6], ["12", 12], ["22", 22], ["24", 24], ["70", 70],
  ["160", 160], ["250", 250], ["350", 350], ["500", 500], ["870", 870], ["1100", 1100]];
let plot = null;
export const sedState = { points: 0, designation: null };
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

export async function showSource(row) {
  details(row);
  const band = (row.table || "").match(/band(\d+)um/);
  const el = document.getElementById("sed-plot");
  if (!band) return;
  const cols = BANDS.map(([b]) => `flux${b}, err_flux${b}`).join(", ");
  const designation = String(row.designation).replace(/'/g, "''");
  const { columns, rows } = await tap(
    `SELECT TOP 1 ${cols} FROM compactsources.sed_view_final WHERE designation${band[1]} = '${designation}'`);
  if (plot) { plot.destroy(); plot = null; }
  el.textContent = "";
  sedState.designation = row.designation;
  sedState.points = 0;
  if (!rows.length) { el.textContent = "no band-merged SED for this source"; return; }
  const at = Object.fromEntries(columns.map((c, i) => [c, i]));
  const pts = BANDS.map(([b, wl]) => [wl, rows[0][at[`flux${b}`]], rows[0][at[`err_flux${b}`]]])
    .filter(([, f]) => f !== null && f > 0);
  sedState.points = pts.length;
  el.dataset.points = String(pts.length);
  plot = new uPlot({
    title: `SED of ${row.designation}`, width: 320, height: 240,
    scales: { x: { time: false, distr: 3 }, y: { distr: 3 } },
    axes: [{ label: "wavelength (um)" }, { label: "flux (Jy)" }],
    series: [{}, { label: "flux", stroke: "#1f77b4", width: 0, points: { size: 7, fill: "#1f77b4" } },
      { label: "error", show: false }],
    hooks: { draw: [errorBars] },
  }, [pts.map((p) => p[0]), pts.map((p) => p[1]), pts.map((p) => p[2])], el);
}
