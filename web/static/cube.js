// The cube viewer: channel maps of a spectral cube, each a SODA cut (VELO, km/s) read in the browser and
// drawn on a canvas; the slider picks the velocity. Clicking a pixel of the map plots its spectrum: a
// SODA cut of that one pixel over every channel (PIXELS=[x:x] [y:y] [*]), read with the same FITS reader.

import uPlot from "/static/vendor/uPlot.esm.js";
import { ServiceError, get, tap } from "./api.js";
import { readFits } from "./fits.js";

const $ = (id) => document.getElementById(id);
const state = { cubes: [], channel: null, drawn: 0, lastSum: null, shape: null, spectrum: null, spectra: 0 };
let spectrumPlot = null;
window.vlkbCube = state;

function velocity() {
  const cube = state.cubes[$("cube-select").selectedIndex];
  const slider = $("cube-velocity");
  const step = (cube.vel_max - cube.vel_min) / cube.channels;
  const v0 = cube.vel_min + step * Number(slider.value);
  return { cube, v0, v1: v0 + step };
}

function draw({ shape, data }) {
  const [nx, ny] = shape;
  state.shape = [nx, ny];
  const plane = data.subarray(0, nx * ny);
  let lo = Infinity, hi = -Infinity, sum = 0;
  for (const v of plane) if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); sum += v; }
  const canvas = $("cube-canvas");
  canvas.width = nx;
  canvas.height = ny;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(nx, ny);
  for (let y = 0; y < ny; y++) {
    for (let x = 0; x < nx; x++) {
      const v = plane[y * nx + x];
      const o = ((ny - 1 - y) * nx + x) * 4;  // FITS rows start at the bottom
      const g = Number.isFinite(v) && hi > lo ? Math.round(255 * (v - lo) / (hi - lo)) : 0;
      img.data[o] = g; img.data[o + 1] = g; img.data[o + 2] = g; img.data[o + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
  state.drawn += 1;
  state.lastSum = sum;
}

async function show() {
  const { cube, v0, v1 } = velocity();
  $("cube-velocity-label").textContent = `${v0.toFixed(2)} to ${v1.toFixed(2)} km/s`;
  $("cube-status").textContent = "cutting…";
  try {
    const resp = await get("/soda/sync", { ID: cube.did, VELO: `${v0} ${v1}` });
    draw(readFits(await resp.arrayBuffer()));
    $("cube-status").textContent = `${cube.title}: channel map at ${((v0 + v1) / 2).toFixed(2)} km/s`;
  } catch (e) {
    $("cube-status").textContent = e instanceof ServiceError ? `error: ${e.message}` : String(e);
  }
}

// The spectral axis of a cut (FITS WCS paper III: linear VRAD/VELO axis), in km/s.
function velocities(cards, n) {
  const axis = [1, 2, 3].find((i) => /^(VRAD|VELO|VOPT)/.test(cards[`CTYPE${i}`] || "")) || 3;
  const crval = Number(cards[`CRVAL${axis}`] || 0), cdelt = Number(cards[`CDELT${axis}`] || 1);
  const crpix = Number(cards[`CRPIX${axis}`] || 1);
  const factor = (cards[`CUNIT${axis}`] || "m/s").trim() === "km/s" ? 1 : 1e-3;
  return Array.from({ length: n }, (_, k) => (crval + (k + 1 - crpix) * cdelt) * factor);
}

// A click on the map: canvas pixel -> FITS pixel (1-based, rows from the bottom) -> its spectrum.
async function spectrumAt(ev) {
  if (!state.shape) return;
  const cube = state.cubes[$("cube-select").selectedIndex];
  const canvas = $("cube-canvas");
  const [nx, ny] = state.shape;
  const box = canvas.getBoundingClientRect();
  const cx = Math.min(nx - 1, Math.floor((ev.clientX - box.left) * nx / box.width));
  const cy = Math.min(ny - 1, Math.floor((ev.clientY - box.top) * ny / box.height));
  const x = cx + 1, y = ny - cy;
  $("cube-spectrum-status").textContent = `spectrum of pixel (${x}, ${y})…`;
  try {
    const resp = await get("/soda/sync", { ID: cube.did, PIXELS: `[${x}:${x}] [${y}:${y}] [*]` });
    const { cards, data } = readFits(await resp.arrayBuffer());
    const values = Array.from(data);
    const vel = velocities(cards, values.length);
    state.spectrum = { did: cube.did, x, y, values, velocities: vel };
    const el = $("cube-spectrum");
    if (spectrumPlot) spectrumPlot.destroy();
    el.textContent = "";
    spectrumPlot = new uPlot({
      title: `pixel (${x}, ${y})`, width: 420, height: 260, scales: { x: { time: false } },
      axes: [{ label: "velocity (km/s)" }, { label: cards.BUNIT || "value" }],
      series: [{}, { label: "spectrum", stroke: "#2ca02c", width: 1.5, points: { show: false } }],
    }, [vel, values], el);
    state.spectrumPlot = spectrumPlot;
    state.spectra += 1;
    $("cube-spectrum-status").textContent = `${cube.title}: spectrum of pixel (${x}, ${y}), ${values.length} channels`;
  } catch (e) {
    $("cube-spectrum-status").textContent = e instanceof ServiceError ? `error: ${e.message}` : String(e);
  }
}

export async function start() {
  $("cube-canvas").addEventListener("click", spectrumAt);
  const { rows } = await tap("SELECT obs_publisher_did, obs_collection, obs_title, vel_min, vel_max, em_xel " +
                             "FROM ivoa.obscore WHERE dataproduct_type = 'cube' ORDER BY obs_publisher_did");
  state.cubes = rows.map(([did, coll, title, vmin, vmax, xel]) => ({
    did, title: `${coll} ${title} ${did.split("/").pop()}`, vel_min: vmin, vel_max: vmax, channels: xel || 64 }));
  const select = $("cube-select");
  for (const c of state.cubes) {
    const opt = document.createElement("option");
    opt.textContent = c.title;
    select.append(opt);
  }
  const setRange = () => {
    const cube = state.cubes[select.selectedIndex];
    $("cube-velocity").max = String(cube.channels - 1);
  };
  select.addEventListener("change", () => { setRange(); show(); });
  $("cube-velocity").addEventListener("input", show);
  if (state.cubes.length) { setRange(); await show(); }
}
