// @ts-check
// Audit page: GET /api/audit filtered by robot, person and action, newest first, 50 a page.
// The first page refreshes itself every 10 s; filters live in the URL.

import { el } from "../lib/socket.js";

const PAGE = 50;
const form = /** @type {HTMLFormElement} */ (document.getElementById("filters"));
const body = /** @type {HTMLElement} */ (document.querySelector("#audit tbody"));
const status = /** @type {HTMLElement} */ (document.getElementById("status"));
const newer = /** @type {HTMLButtonElement} */ (document.getElementById("newer"));
const older = /** @type {HTMLButtonElement} */ (document.getElementById("older"));
let offset = 0;

/** @param {Record<string, any>} detail */
function detailText(detail) {
  return Object.entries(detail || {}).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(" · ");
}

async function load() {
  const params = new URLSearchParams();
  for (const key of ["robot", "actor", "action"]) {
    const value = /** @type {HTMLSelectElement} */ (form.elements.namedItem(key)).value;
    if (value) params.set(key, value);
  }
  history.replaceState(null, "", `?${params}${offset ? `&offset=${offset}` : ""}`);
  params.set("limit", String(PAGE + 1));
  params.set("offset", String(offset));
  try {
    const response = await fetch(`/api/audit?${params}`, { credentials: "same-origin" });
    const rows = await response.json();
    if (!response.ok) throw new Error(rows.detail || `HTTP ${response.status}`);
    const more = rows.length > PAGE;
    body.replaceChildren(...rows.slice(0, PAGE).map((/** @type {any} */ a) => el("tr", { "data-action": a.action }, [
      el("td", {}, [el("time", { datetime: a.at }, [new Date(a.at).toLocaleString()])]), el("td", {}, [a.actor]),
      el("td", {}, [a.action.replaceAll("_", " ")]), el("td", {}, [a.robot || "—"]), el("td", {}, [el("code", {}, [a.source || ""])]),
      el("td", {}, [detailText(a.detail)]),
    ])));
    if (!rows.length) body.replaceChildren(el("tr", {}, [el("td", { colspan: "6" }, ["Nothing matches these filters."])]));
    newer.disabled = offset === 0;
    older.disabled = !more;
    /** @type {HTMLElement} */ (document.getElementById("page")).textContent = rows.length ? `${offset + 1}–${offset + Math.min(PAGE, rows.length)}` : "";
    status.textContent = `Updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    status.textContent = `Could not load the audit log: ${/** @type {Error} */ (error).message}`;
  }
}

const initial = new URLSearchParams(location.search);
for (const key of ["robot", "actor", "action"]) {
  const value = initial.get(key);
  const select = /** @type {HTMLSelectElement} */ (form.elements.namedItem(key));
  if (value) { if (![...select.options].some((o) => o.value === value)) select.append(el("option", {}, [value])); select.value = value; }
}
offset = Math.max(0, Number(initial.get("offset")) || 0);
form.addEventListener("change", () => { offset = 0; load(); });
newer.addEventListener("click", () => { offset = Math.max(0, offset - PAGE); load(); });
older.addEventListener("click", () => { offset += PAGE; load(); });
load();
setInterval(() => { if (offset === 0) load(); }, 10000);
