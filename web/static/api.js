// Calls to the service's own protocols, with the caller's token when one is set (sessionStorage: this tab only).

const TOKEN_KEY = "vlkb.token";

export function token() { return sessionStorage.getItem(TOKEN_KEY); }
export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value); else sessionStorage.removeItem(TOKEN_KEY);
}

export function authHeaders() {
  const t = token();
  return t ? { Authorization: `Bearer ${t}` } : {};
}

// The message of a DALI error document (VOTable with INFO name="QUERY_STATUS" value="ERROR"), or the raw text.
export function daliError(text) {
  try {
    const doc = new DOMParser().parseFromString(text, "application/xml");
    const infos = [...doc.getElementsByTagName("INFO")].filter(
      (i) => i.getAttribute("name") === "QUERY_STATUS" && i.getAttribute("value") === "ERROR");
    if (infos.length) return infos[infos.length - 1].textContent.trim();
  } catch (e) { /* not XML */ }
  return text.slice(0, 500);
}

export class ServiceError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

export async function get(path, params = {}, options = {}) {
  const url = new URL(path, window.location.origin);
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  const resp = await fetch(url, { headers: authHeaders(), signal: options.signal });
  if (!resp.ok) throw new ServiceError(resp.status, daliError(await resp.text()));
  return resp;
}

// A synchronous TAP query answered as JSON ({metadata, data}); errors raise ServiceError with the DALI message.
export async function tap(query, { maxrec, signal } = {}) {
  const body = new URLSearchParams({ LANG: "ADQL", QUERY: query, FORMAT: "json" });
  if (maxrec !== undefined) body.set("MAXREC", String(maxrec));
  const resp = await fetch("/tap/sync", { method: "POST", body, headers: authHeaders(), signal });
  const text = await resp.text();
  if (!resp.ok) throw new ServiceError(resp.status, daliError(text));
  const answer = JSON.parse(text);
  const columns = answer.metadata.map((m) => m.name);
  return { columns, metadata: answer.metadata, rows: answer.data, answer };
}

// Rows of a VOTable TABLEDATA document as objects keyed by FIELD name.
export function votableRows(text) {
  const doc = new DOMParser().parseFromString(text, "application/xml");
  const names = [...doc.getElementsByTagName("FIELD")].map((f) => f.getAttribute("name"));
  return [...doc.getElementsByTagName("TR")].map((tr) => {
    const cells = [...tr.getElementsByTagName("TD")].map((td) => td.textContent);
    return Object.fromEntries(names.map((n, i) => [n, cells[i] ?? ""]));
  });
}
