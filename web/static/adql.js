// The ADQL console: the service's examples (TAPRegExt/DALI examples document), errors as the service
// words them, a paged table of the answer, and downloads in every output format of /tap/sync.

import { ServiceError, get, tap } from "./api.js";

const MAXREC = 10000;
const state = { columns: [], rows: [], page: 0 };
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
  } catch (e) {
    $("adql-status").textContent = "";
    const err = $("adql-error");
    err.textContent = e instanceof ServiceError ? e.message : String(e);
    err.hidden = false;
  }
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
  $("adql-prev").addEventListener("click", () => { state.page = Math.max(0, state.page - 1); render(); });
  $("adql-next").addEventListener("click", () => { state.page += 1; render(); });
  $("adql-query").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) run(); });
  await loadExamples();
}
