// My jobs: the caller's UWS jobs (UWS 1.1 job lists) of every kind the service runs, newest first, each with
// its phase, its progress (vlkb:progress in uws:jobInfo, while a source-finding or stamps job runs) and its
// results, read from the job's own document.

import { ServiceError, get, token } from "./api.js";

// every UWS job list of the service, by what a user calls it (app/routers: uws_router(...))
const LISTS = [
  ["TAP query", "/tap/async"],
  ["table update", "/tap/table-update"],
  ["cutout", "/soda/async"],
  ["merge", "/soda/merge/async"],
  ["source finding", "/sfind/async"],
  ["stamps", "/stamps/async"],
];
// the job documents read per refresh (the newest); older jobs are listed with their phase only
const DETAILED = 30;
const $ = (id) => document.getElementById(id);
const ns = (node, name) => node.getElementsByTagNameNS("*", name);

function xml(text) { return new DOMParser().parseFromString(text, "application/xml"); }

// the jobs of one list, as {kind, list, id, phase, created}
async function jobsOf(kind, list) {
  try {
    const doc = xml(await (await get(list)).text());
    return [...ns(doc, "jobref")].map((ref) => ({
      kind, list, id: ref.getAttribute("id"),
      phase: ns(ref, "phase")[0]?.textContent || "",
      created: ns(ref, "creationTime")[0]?.textContent || "",
    }));
  } catch (e) {
    if (e instanceof ServiceError) return [];  // a list this caller may not read, or a service not enabled
    throw e;
  }
}

// phase, progress and result links from the job's document
async function detail(job) {
  const doc = xml(await (await get(`${job.list}/${job.id}`)).text());
  job.phase = ns(doc, "phase")[0]?.textContent || job.phase;
  job.progress = ns(doc, "progress")[0]?.textContent || "";
  job.results = [...ns(doc, "result")].map((r) => ({
    id: r.getAttribute("id"),
    href: r.getAttributeNS("http://www.w3.org/1999/xlink", "href") || `${job.list}/${job.id}/results/${r.getAttribute("id")}`,
  }));
}

function link(href, text) {
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  return a;
}

async function refresh() {
  const table = $("jobs-table");
  table.textContent = "";
  if (!token()) { $("jobs-status").textContent = "Log in to see your jobs."; return; }
  $("jobs-status").textContent = "Loading…";
  const jobs = (await Promise.all(LISTS.map(([kind, list]) => jobsOf(kind, list)))).flat();
  jobs.sort((a, b) => b.created.localeCompare(a.created));
  await Promise.all(jobs.slice(0, DETAILED).map((job) => detail(job).catch(() => {})));
  const head = table.createTHead().insertRow();
  for (const h of ["kind", "job", "phase", "progress", "created", "results"]) head.insertCell().outerHTML = `<th>${h}</th>`;
  const body = table.createTBody();
  for (const job of jobs) {
    const tr = body.insertRow();
    tr.dataset.job = job.id;
    tr.insertCell().textContent = job.kind;
    tr.insertCell().append(link(`${job.list}/${job.id}`, job.id));
    tr.insertCell().textContent = job.phase;
    tr.insertCell().textContent = job.progress || "";
    tr.insertCell().textContent = job.created;
    const cell = tr.insertCell();
    if (job.results) {
      for (const r of job.results) { cell.append(link(r.href, r.id), " "); }
    } else {
      cell.append(link(`${job.list}/${job.id}/results`, "results"));
    }
  }
  $("jobs-status").textContent = `${jobs.length} jobs`;
}

export async function start() {
  $("jobs-refresh").addEventListener("click", refresh);
  await refresh();
}
