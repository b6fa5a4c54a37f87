// @ts-check
// Labeling queue: episodes waiting for a label, filterable, keyboard-driven (J/K, Enter, M).
// Refreshes every 5 s, so new failures appear as robots upload them.

import { api } from "../lib/http.js";
import { ago, el } from "../lib/socket.js";

const form = /** @type {HTMLFormElement} */ (document.getElementById("filters"));
const list = /** @type {HTMLElement} */ (document.getElementById("queue"));
const status = /** @type {HTMLElement} */ (document.getElementById("status"));
const KEYS = ["state", "assigned", "station", "robot", "policy", "trigger", "failure_mode"];
/** @type {any[]} */
let items = [];
let selected = 0;

function params() {
  const query = new URLSearchParams();
  for (const key of KEYS) {
    const value = /** @type {HTMLSelectElement} */ (form.elements.namedItem(key)).value;
    if (value) query.set(key, value);
  }
  return query;
}

/** @param {any} item */
function row(item, index) {
  const label = item.label;
  const labelText = label ? `${label.failure_mode ? label.failure_mode.replaceAll("_", " ") : "no failure"} · ${label.review}` : "not labeled";
  const thumb = item.thumbnail ? el("img", { src: item.thumbnail, alt: `${item.robot} at the takeover`, width: "160", height: "120", loading: "lazy" })
    : el("div", { class: "no-thumb" }, ["no clip yet"]);
  const li = el("li", { class: `queue-item ${item.state}`, "data-episode": item.episode, "aria-selected": String(index === selected), tabindex: "-1" }, [
    el("a", { href: `/labeling/episodes/${item.episode}/`, class: "thumb-link", tabindex: "-1" }, [thumb]),
    el("div", { class: "queue-body" }, [
      el("div", { class: "queue-title" }, [
        el("a", { href: `/labeling/episodes/${item.episode}/` }, [`${item.robot} · ${new Date(item.started_at).toLocaleString()}`]),
        el("span", { class: `state ${item.state}` }, [item.state]),
      ]),
      el("div", { class: "muted" }, [
        `${item.outcome}${item.robot_failure_mode ? ` (${item.robot_failure_mode.replaceAll("_", " ")} by the robot)` : ""}`,
        item.trigger ? ` · ${item.trigger.replaceAll("_", " ")}` : "",
        item.duration_s != null ? ` · ${item.duration_s.toFixed(1)} s` : "",
        item.human_steps ? ` · ${(item.human_steps / 30).toFixed(1)} s human` : "",
        ` · ${item.policy_version || "no policy"} · ${ago(Date.now() - Date.parse(item.started_at))} ago`,
      ]),
      el("div", {}, [`Label: ${labelText}`, item.assigned_to ? ` · assigned to ${item.assigned_to}` : " · unassigned"]),
    ]),
  ]);
  li.addEventListener("click", (event) => { if (!(/** @type {HTMLElement} */ (event.target).closest("a"))) { selected = index; render(); } });
  return li;
}

function render() {
  selected = Math.max(0, Math.min(selected, items.length - 1));
  list.replaceChildren(...items.map(row));
  /** @type {HTMLElement} */ (document.getElementById("empty")).hidden = items.length > 0;
  const current = list.children[selected];
  if (current && document.activeElement !== document.body && !form.contains(document.activeElement)) /** @type {HTMLElement} */ (current).focus({ preventScroll: false });
}

async function load() {
  const query = params();
  history.replaceState(null, "", `?${query}`);
  try {
    const data = await api(`/api/labeling/queue?${query}`);
    items = data.items;
    const c = data.counts;
    /** @type {HTMLElement} */ (document.getElementById("counts")).textContent =
      `${c.open} open · ${c.disputed} disputed · ${c.labeled} awaiting review · ${c.confirmed} confirmed${data.total > items.length ? ` · showing ${items.length} of ${data.total}` : ""}`;
    render();
    status.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.loaded = "true";
  } catch (error) {
    status.textContent = `Could not load the queue: ${/** @type {Error} */ (error).message}`;
  }
}

document.addEventListener("keydown", async (event) => {
  const target = /** @type {HTMLElement} */ (event.target);
  if (event.ctrlKey || event.metaKey || event.altKey || ["INPUT", "SELECT", "TEXTAREA"].includes(target.tagName)) return;
  const key = event.key.toLowerCase();
  if (key === "j" || event.key === "ArrowDown") { selected += 1; render(); event.preventDefault(); }
  else if (key === "k" || event.key === "ArrowUp") { selected -= 1; render(); event.preventDefault(); }
  else if (event.key === "Enter" && items[selected]) location.assign(`/labeling/episodes/${items[selected].episode}/`);
  else if (key === "m" && items[selected]) {
    try {
      const me = JSON.parse(/** @type {HTMLElement} */ (document.getElementById("me")).textContent || '""');
      await api(`/api/labeling/episodes/${items[selected].episode}/assign`, { assignee: me });
      load();
    } catch (error) { status.textContent = `Refused: ${/** @type {Error} */ (error).message}`; }
  }
});

const initial = new URLSearchParams(location.search);
for (const key of KEYS) {
  const value = initial.get(key);
  const select = /** @type {HTMLSelectElement} */ (form.elements.namedItem(key));
  if (value) { if (![...select.options].some((o) => o.value === value)) select.append(el("option", { value }, [value])); select.value = value; }
}
form.addEventListener("change", () => { selected = 0; load(); });
load();
setInterval(load, 5000);

// ---------------------------------------------------------------- exports (labelers)

const exportForm = /** @type {HTMLFormElement|null} */ (document.getElementById("export-form"));
const exportsList = document.getElementById("exports");

/** @param {any} item */
function exportRow(item) {
  const percent = Math.round(item.progress * 100);
  const bar = el("progress", { max: "100", value: String(percent), "aria-label": `export ${percent}%` });
  const parts = [
    el("strong", {}, [item.format === "xr0" ? "XR0" : "LeRobot v3"]),
    ` · ${item.episodes} episode${item.episodes === 1 ? "" : "s"}${item.filters?.fps ? ` at ${item.filters.fps} fps` : ""} · ${item.state}`,
    item.state === "running" || item.state === "queued" ? bar : "",
    item.message && item.state !== "done" ? el("span", { class: "muted" }, [` ${item.message}`]) : "",
  ];
  if (item.download) parts.push(" ", el("a", { href: item.download, class: "button" }, [`Download (${item.size >= 1e6 ? `${(item.size / 1e6).toFixed(1)} MB` : `${Math.max(1, Math.round(item.size / 1e3))} kB`})`]));
  return el("li", { class: `export ${item.state}`, "data-export": item.id }, parts);
}

async function loadExports() {
  if (!exportsList) return;
  try {
    const items = await api("/api/labeling/exports?limit=5");
    exportsList.replaceChildren(...items.map(exportRow));
  } catch (error) { /* the queue's status line already says when the server is away */ }
}

exportForm?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = new FormData(exportForm);
  const body = { format: data.get("format"), review: data.get("review") };
  if (data.get("fps")) Object.assign(body, { fps: Number(data.get("fps")) });
  for (const key of ["station", "robot", "policy"]) {
    const value = /** @type {HTMLSelectElement} */ (form.elements.namedItem(key)).value;
    if (value) Object.assign(body, { [key]: value });
  }
  try {
    await api("/api/labeling/exports", body);
    status.textContent = "Export started.";
  } catch (error) {
    status.textContent = `Export refused: ${/** @type {Error} */ (error).message}`;
  }
  loadExports();
});
if (exportsList) { loadExports(); setInterval(loadExports, 1500); }
