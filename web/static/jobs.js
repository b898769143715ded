// My jobs: the caller's UWS jobs (UWS 1.1 job lists) of every kind the service runs.

import { ServiceError, get, token } from "./api.js";

const LISTS = ["/tap/async", "/soda/async"];
const $ = (id) => document.getElementById(id);

async function refresh() {
  const table = $("jobs-table");
  table.textContent = "";
  if (!token()) { $("jobs-status").textContent = "Log in to see your jobs."; return; }
  const head = table.createTHead().insertRow();
  for (const h of ["kind", "job", "phase", "created", "results"]) head.insertCell().outerHTML = `<th>${h}</th>`;
  let n = 0;
  for (const list of LISTS) {
    try {
      const doc = new DOMParser().parseFromString(await (await get(list)).text(), "application/xml");
      for (const ref of doc.getElementsByTagNameNS("*", "jobref")) {
        const id = ref.getAttribute("id");
        const tr = table.insertRow();
        tr.insertCell().textContent = list;
        const a = document.createElement("a");
        a.href = `${list}/${id}`;
        a.textContent = id;
        tr.insertCell().append(a);
        tr.insertCell().textContent = ref.getElementsByTagNameNS("*", "phase")[0]?.textContent || "";
        tr.insertCell().textContent = ref.getElementsByTagNameNS("*", "creationTime")[0]?.textContent || "";
        const r = document.createElement("a");
        r.href = `${list}/${id}/results`;
        r.textContent = "results";
        tr.insertCell().append(r);
        n += 1;
      }
    } catch (e) {
      if (!(e instanceof ServiceError)) throw e;
    }
  }
  $("jobs-status").textContent = `${n} jobs`;
}

export async function start() {
  $("jobs-refresh").addEventListener("click", refresh);
  await refresh();
}
