// The ADQL console: the service's examples (TAPRegExt/DALI examples document), errors as the service
// words them and shown where they are in the query, a paged table of the answer, a scatter plot of two of
// its numeric columns, and downloads in every output format of /tap/sync.

import uPlot from "/static/vendor/uPlot.esm.js";
import { ServiceError, get, tap } from "./api.js";

const MAXREC = 10000;
const NUMERIC = new Set(["short", "int", "long", "float", "double", "unsignedByte"]);
const state = { columns: [], rows: [], page: 0, numeric: [], plot: null, plotted: null };
window.vlkbAdql = state;

const $ = (id) => document.getElementById(id);

async function loadExamples() {
  const doc = new DOMParser().parseFromString(await (await get("/tap/examples")).text(), "text/html");
  const select = $("adql-examples");
  for (const ex of doc.querySelectorAll('[typeof="example"]')) {
    const query = ex.querySelector('[property="query"]');
    if (!query) continue;
    const opt = document.createElement("option");
    opt.value = query.textContent.trim();
    opt.textContent = (ex.querySelector('[property="name"]') || ex).textContent.trim();
    select.append(opt);
  }
  select.addEventListener("change", () => { if (select.value) $("adql-query").value = select.value; });
}

function render() {
  const size = Number($("adql-page-size").value);
  const pages = Math.max(1, Math.ceil(state.rows.length / size));
  state.page = Math.min(state.page, pages - 1);
  const table = $("adql-table");
  table.textContent = "";
  const head = table.createTHead().insertRow();
  for (const c of state.columns) head.insertCell().outerHTML = `<th>${escape(c)}</th>`;
  const body = table.createTBody();
  for (const row of state.rows.slice(state.page * size, (state.page + 1) * size)) {
    const tr = body.insertRow();
    for (const v of row) tr.insertCell().textContent = v === null ? "" : Array.isArray(v) ? v.join(" ") : String(v);
  }
  $("adql-pager").hidden = pages <= 1;
  $("adql-page").textContent = ` page ${state.page + 1} of ${pages} `;
}

function escape(text) {
  return text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

async function run() {
  $("adql-error").hidden = true;
  $("adql-status").textContent = "running…";
  const started = performance.now();
  try {
    const { columns, rows, answer } = await tap($("adql-query").value, { maxrec: MAXREC });
    state.columns = columns;
    state.rows = rows;
    state.page = 0;
    const overflow = JSON.stringify(answer.infos || {}).includes("OVERFLOW") || rows.length >= MAXREC;
    $("adql-status").textContent = `${rows.length} rows in ${((performance.now() - started) / 1000).toFixed(2)} s` +
      (overflow ? ` (truncated at ${MAXREC}: download for all rows)` : "");
    $("adql-status").dataset.rows = String(rows.length);
    render();
    axes(answer.metadata);
  } catch (e) {
    $("adql-status").textContent = "";
    showError(e instanceof ServiceError ? e.message : String(e));
  }
}

// The error under the query: the service's words, and where a position is named ("line L, column C"), that
// line with a caret under the column, and the query's text selected from there to the end of the word.
function showError(message) {
  const err = $("adql-error");
  err.textContent = message;
  delete err.dataset.line;
  const at = /line (\d+), column (\d+)/.exec(message);
  const box = $("adql-query");
  const lines = box.value.split("\n");
  if (at && Number(at[1]) >= 1 && Number(at[1]) <= lines.length) {
    const line = Number(at[1]), col = Math.max(1, Number(at[2]));
    err.textContent += `\n\n${lines[line - 1]}\n${" ".repeat(col - 1)}^`;
    err.dataset.line = String(line);
    err.dataset.column = String(col);
    const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0) + col - 1;
    const word = /^[^\s,()]*/.exec(box.value.slice(start))[0];
    box.focus();
    box.setSelectionRange(start, start + Math.max(1, word.length));
  }
  err.hidden = false;
}

// The scatter plot's column choices: the answer's numeric columns (first two preselected).
function axes(metadata) {
  state.numeric = metadata.map((m, i) => [m, i]).filter(([m]) => NUMERIC.has(m.datatype) && !m.arraysize)
    .map(([m, i]) => ({ name: m.name, unit: m.unit || "", index: i }));
  for (const [id, pick] of [["adql-x", 0], ["adql-y", 1]]) {
    const select = $(id);
    select.textContent = "";
    state.numeric.forEach((c, k) => select.add(new Option(c.name, String(k), false, k === pick)));
  }
  $("adql-scatter").hidden = state.numeric.length < 2;
  if (state.numeric.length >= 2) scatter();
}

// Every row with both values as a point (uPlot draws points with no line between them: x sorted).
function scatter() {
  const x = state.numeric[Number($("adql-x").value)], y = state.numeric[Number($("adql-y").value)];
  if (!x || !y) return;
  const pts = state.rows.map((r) => [r[x.index], r[y.index]])
    .filter(([a, b]) => typeof a === "number" && typeof b === "number" && isFinite(a) && isFinite(b))
    .sort((p, q) => p[0] - q[0]);
  state.plotted = { x: x.name, y: y.name, points: pts.length };
  if (state.plot) state.plot.destroy();
  const label = (c) => (c.unit ? `${c.name} (${c.unit})` : c.name);
  state.plot = new uPlot({
    width: 480, height: 320, scales: { x: { time: false } },
    axes: [{ label: label(x) }, { label: label(y) }],
    series: [{ label: label(x) }, { label: label(y), stroke: "#1f77b4", width: 0, paths: () => null,
              points: { show: true, size: 5, fill: "#1f77b4" } }],
  }, [pts.map((p) => p[0]), pts.map((p) => p[1])], $("adql-plot"));
}

// A download is a form POST to /tap/sync, so the browser saves the answer; the token cannot go in a form,
// so a logged-in user's download goes through fetch and a blob.
async function download() {
  const body = new URLSearchParams({ LANG: "ADQL", QUERY: $("adql-query").value, FORMAT: $("adql-format").value });
  const { authHeaders, daliError } = await import("./api.js");
  const resp = await fetch("/tap/sync", { method: "POST", body, headers: authHeaders() });
  if (!resp.ok) {
    $("adql-error").textContent = daliError(await resp.text());
    $("adql-error").hidden = false;
    return;
  }
  const ext = { votable: "vot", "votable/td": "vot", csv: "csv", tsv: "tsv", json: "json", parquet: "parquet" };
  const a = document.createElement("a");
  a.href = URL.createObjectURL(await resp.blob());
  a.download = `result.${ext[$("adql-format").value]}`;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

export async function start() {
  $("adql-run").addEventListener("click", run);
  $("adql-download").addEventListener("click", download);
  $("adql-page-size").addEventListener("change", render);
  $("adql-x").addEventListener("change", scatter);
  $("adql-y").addEventListener("change", scatter);
  $("adql-prev").addEventListener("click", () => { state.page = Math.max(0, state.page - 1); render(); });
  $("adql-next").addEventListener("click", () => { state.page += 1; render(); });
  $("adql-query").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) run(); });
  await loadExamples();
}
