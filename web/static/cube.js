// The cube viewer: channel maps of a spectral cube, each a SODA cut (VELO, km/s) read in the browser and
// drawn on a canvas; the slider picks the velocity.

import { ServiceError, get, tap } from "./api.js";
import { readFits } from "./fits.js";

const $ = (id) => document.getElementById(id);
const state = { cubes: [], channel: null, drawn: 0, lastSum: null };
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

export async function start() {
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
