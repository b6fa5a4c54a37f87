// @ts-check
// KPIs page: cards and charts (uPlot, vendored under static/vendor) from /api/dashboard/kpis.
// Refreshes every 30 s; filters live in the URL so a view can be shared.

import uPlot from "../../vendor/uplot/uPlot.esm.js";
import { el } from "../lib/socket.js";

const REFRESH_MS = 30000;
const COLORS = { ok: "#2fbf71", bad: "#ef4444", warn: "#f5b83d", accent: "#4f9cf9", muted: "#98a2b3", grid: "#2a323d" };
const TRIGGER_COLORS = /** @type {Record<string, string>} */ ({
  policy_uncertainty: "#f5b83d", fault: "#ef4444", takt_overrun: "#c084fc", supervisor: "#4f9cf9", estop: "#ffffff",
});

const form = /** @type {HTMLFormElement} */ (document.getElementById("filters"));
const status = /** @type {HTMLElement} */ (document.getElementById("status"));
/** @type {Record<string, any>} */
const charts = {};

/** @param {number|null|undefined} v @param {number} [digits] */
const pct = (v, digits = 1) => (v == null ? "—" : `${(v * 100).toFixed(digits)}%`);
/** @param {number|null|undefined} s */
const secs = (s) => (s == null ? "—" : s >= 120 ? `${(s / 60).toFixed(1)} min` : `${s.toFixed(1)} s`);
/** @param {number|null|undefined} v @param {number} [digits] */
const num = (v, digits = 1) => (v == null ? "—" : v.toFixed(digits));

function readFilters() {
  const data = new FormData(form);
  /** @type {Record<string, string>} */
  const params = {};
  const hours = String(data.get("hours") || "8");
  if (hours === "custom") {
    const start = String(data.get("start") || ""), end = String(data.get("end") || "");
    if (start) params.start = new Date(start).toISOString();
    if (end) params.end = new Date(end).toISOString();
  } else params.hours = hours;
  for (const key of ["station", "robot", "policy"]) { const v = String(data.get(key) || ""); if (v) params[key] = v; }
  return params;
}

function restoreFilters() {
  const query = new URLSearchParams(location.search);
  const hours = /** @type {HTMLSelectElement} */ (form.elements.namedItem("hours"));
  if (query.get("start") || query.get("end")) hours.value = "custom";
  else if (query.get("hours")) hours.value = /** @type {string} */ (query.get("hours"));
  showCustom();
  for (const key of ["start", "end"]) {
    const value = query.get(key);
    if (value) /** @type {HTMLInputElement} */ (form.elements.namedItem(key)).value = toLocalInput(new Date(value));
  }
  return query;
}

/** @param {Date} d */
function toLocalInput(d) {
  const pad = (/** @type {number} */ n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function showCustom() {
  const custom = /** @type {HTMLSelectElement} */ (form.elements.namedItem("hours")).value === "custom";
  for (const label of form.querySelectorAll("[data-custom]")) /** @type {HTMLElement} */ (label).hidden = !custom;
}

/** @param {string} name @param {string[]} values @param {string|null} selected */
function fillSelect(name, values, selected) {
  const select = /** @type {HTMLSelectElement} */ (form.elements.namedItem(name));
  const current = selected ?? select.value;
  select.replaceChildren(el("option", { value: "" }, ["all"]), ...values.map((v) => el("option", { value: v }, [v])));
  select.value = values.includes(current) ? current : "";
}

/** @param {any} k */
function renderCards(k) {
  const takt = Array.isArray(k.takt_s) ? k.takt_s.join("/") : k.takt_s;
  /** @type {[string, string, string][]} */
  const cards = [
    ["Success rate", pct(k.success_rate), `${k.successes} of ${k.cycles} cycles${k.aborted ? ` · ${k.aborted} aborted` : ""}`],
    ["Cycles per hour", num(k.cycles_per_hour), k.cycles_per_robot_hour == null ? "" : `${num(k.cycles_per_robot_hour)} per robot`],
    ["Cycle time", secs(k.cycle_time_s.mean), `takt ${takt} s · ${pct(k.within_takt, 0)} within · p95 ${secs(k.cycle_time_s.p95)}`],
    ["Interventions per hour", num(k.interventions_per_hour), `${k.interventions} in the window`],
    ["Mean time between interventions", secs(k.mtbi_s), "robot cycle time per intervention"],
    ["Autonomy ratio", pct(k.autonomy_ratio), `${num(k.human_hours * 60)} min of human control`],
    ["Time to acknowledge", secs(k.time_to_ack_s.median), `median · p95 ${secs(k.time_to_ack_s.p95)}`],
    ["Time to takeover", secs(k.time_to_takeover_s.median), `median · p95 ${secs(k.time_to_takeover_s.p95)}`],
    ["Intervention duration", secs(k.intervention_duration_s.median), `median raised → resolved · p95 ${secs(k.intervention_duration_s.p95)}`],
    ["ROHE", k.rohe == null ? "—" : num(k.rohe, 0), "successful cycles per hour of human effort"],
    ["Actions clamped", String(k.actions_clamped ?? 0), `outside the robot's declared limits · in ${k.cycles_with_clamped_actions ?? 0} cycles`],
  ];
  /** @type {HTMLElement} */ (document.getElementById("cards")).replaceChildren(...cards.map(([label, value, note]) =>
    el("div", { class: "kpi", "data-kpi": label }, [el("div", { class: "label" }, [label]), el("div", { class: "value" }, [value]), el("div", { class: "note" }, [note])])));
}

/** @param {string} id @param {any} options @param {any[]} data */
function chart(id, options, data) {
  const box = /** @type {HTMLElement} */ (document.getElementById(id));
  const width = Math.max(320, box.clientWidth || 440);
  charts[id]?.destroy();
  box.replaceChildren();
  charts[id] = new uPlot({ width, height: 220, ...options }, data, box);
}

const axis = (/** @type {any} */ extra = {}) => ({ stroke: COLORS.muted, grid: { stroke: COLORS.grid }, ticks: { stroke: COLORS.grid }, ...extra });

/** @param {any} result */
function renderCharts(result) {
  const s = result.series;
  const bars = uPlot.paths.bars ? uPlot.paths.bars({ size: [0.7, 40] }) : undefined;
  const successPct = s.success_rate.map((/** @type {number|null} */ v) => (v == null ? null : v * 100));
  chart("chart-cycles", {
    scales: { x: { time: true }, cycles: { range: (/** @type {any} */ _u, /** @type {number} */ _min, /** @type {number} */ max) => [0, Math.max(1, max)] }, pct: { range: [0, 100] } },
    axes: [axis(), axis({ scale: "cycles", label: "cycles" }), axis({ scale: "pct", side: 1, label: "success %", grid: { show: false } })],
    series: [{}, { label: "cycles", scale: "cycles", fill: "rgba(79,156,249,.45)", stroke: COLORS.accent, paths: bars, points: { show: false } },
      { label: "success %", scale: "pct", stroke: COLORS.ok, width: 2, spanGaps: false, value: (/** @type {any} */ _u, /** @type {number|null} */ v) => (v == null ? "—" : `${v.toFixed(0)}%`) }],
  }, [s.t, s.cycles, successPct]);

  const h = result.cycle_time_histogram;
  const xs = h.counts.map((/** @type {number} */ _c, /** @type {number} */ i) => i * h.bin_s);
  chart("chart-cycletime", {
    scales: { x: { time: false } },
    axes: [axis({ label: "seconds", values: (/** @type {any} */ _u, /** @type {number[]} */ ticks) => ticks.map((t) => `${t}`) }), axis({ label: "cycles" })],
    series: [{ label: "cycle time", value: (/** @type {any} */ _u, /** @type {number} */ v) => (v == null ? "—" : `${v}–${v + h.bin_s} s`) },
      { label: "successful cycles", fill: "rgba(47,191,113,.5)", stroke: COLORS.ok, paths: bars, points: { show: false } }],
    hooks: { draw: [(/** @type {any} */ u) => {
      // The takt: a cycle right of this line made the line wait.
      const x = u.valToPos(h.takt_s, "x", true);
      const ctx = u.ctx;
      ctx.save(); ctx.strokeStyle = COLORS.bad; ctx.setLineDash([6, 4]); ctx.lineWidth = 2;
      ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke();
      ctx.fillStyle = COLORS.bad; ctx.font = `${12 * devicePixelRatio}px system-ui`; ctx.fillText(`takt ${h.takt_s} s`, x + 4, u.bbox.top + 14 * devicePixelRatio);
      ctx.restore();
    }] },
  }, [xs, h.counts]);

  // Interventions stacked by trigger: draw cumulative sums, report raw counts in the legend.
  const triggers = Object.keys(s.interventions).sort();
  /** @type {number[][]} */
  const cumulative = [];
  let running = s.t.map(() => 0);
  for (const trigger of triggers) {
    running = running.map((v, i) => v + s.interventions[trigger][i]);
    cumulative.push(running);
  }
  const order = triggers.map((_, i) => i).reverse();  // tallest first, so each lower layer stays visible
  chart("chart-interventions", {
    scales: { x: { time: true }, y: { range: (/** @type {any} */ _u, /** @type {number} */ _min, /** @type {number} */ max) => [0, Math.max(1, max)] } },
    axes: [axis(), axis({ label: "interventions" })],
    series: [{}, ...order.map((i) => ({
      label: triggers[i].replace("_", " "), fill: TRIGGER_COLORS[triggers[i]] || COLORS.muted, stroke: TRIGGER_COLORS[triggers[i]] || COLORS.muted,
      paths: bars, points: { show: false }, value: (/** @type {any} */ _u, /** @type {any} */ _v, /** @type {number} */ _si, /** @type {number|null} */ idx) => (idx == null ? "—" : String(s.interventions[triggers[i]][idx])),
    }))],
  }, [s.t, ...order.map((i) => cumulative[i])]);
}

/** @param {string} id @param {any[]} rows @param {string} first */
function renderTable(id, rows, first) {
  const table = /** @type {HTMLTableElement} */ (document.getElementById(id));
  const head = el("tr", {}, [first, "Cycles", "Success", "Mean cycle", "Cycles with intervention", "Actions clamped", "Failure modes"].map((h) => el("th", { scope: "col" }, [h])));
  const body = rows.map((r) => el("tr", {}, [
    el("th", { scope: "row" }, [r.name]), el("td", {}, [String(r.cycles)]),
    el("td", {}, [el("span", { class: "bar", role: "img", "aria-label": pct(r.success_rate) }, [el("span", { style: `width:${(r.success_rate || 0) * 100}%` })]), ` ${pct(r.success_rate)}`]),
    el("td", {}, [secs(r.mean_cycle_s)]), el("td", {}, [String(r.interventions)]), el("td", {}, [String(r.actions_clamped ?? 0)]),
    el("td", {}, [Object.entries(r.failure_modes).map(([m, c]) => `${m.replace("_", " ")} ${c}`).join(", ") || "—"]),
  ]));
  table.replaceChildren(el("thead", {}, [head]), el("tbody", {}, body.length ? body : [el("tr", {}, [el("td", { colspan: "7" }, ["No cycles in this window."])])]));
}

let first = true;
async function load() {
  const params = readFilters();
  const query = new URLSearchParams(params);
  history.replaceState(null, "", `?${query}`);
  status.textContent = "Loading…";
  try {
    const response = await fetch(`/api/dashboard/kpis?${query}`, { credentials: "same-origin" });
    const result = await response.json();
    if (!response.ok) throw new Error(result.detail || `HTTP ${response.status}`);
    const saved = first ? new URLSearchParams(location.search) : null;
    fillSelect("station", result.options.stations, saved?.get("station") ?? null);
    fillSelect("robot", result.options.robots, saved?.get("robot") ?? null);
    fillSelect("policy", result.options.policies, saved?.get("policy") ?? null);
    first = false;
    /** @type {HTMLElement} */ (document.getElementById("window")).textContent =
      `${new Date(result.window.start).toLocaleString()} – ${new Date(result.window.end).toLocaleString()}${result.truncated ? " · truncated: narrow the filters" : ""}`;
    renderCards(result.kpis);
    renderCharts(result);
    renderTable("by-policy", result.by_policy, "Policy version");
    renderTable("by-robot", result.by_robot, "Robot");
    status.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.loaded = "true";
  } catch (error) {
    status.textContent = `Could not load KPIs: ${/** @type {Error} */ (error).message}`;
  }
}

form.addEventListener("submit", (event) => { event.preventDefault(); load(); });
form.addEventListener("change", (event) => { showCustom(); if (/** @type {HTMLElement} */ (event.target).tagName === "SELECT") load(); });
restoreFilters();
// Restore the saved selections once options arrive (they are filled from the first answer).
const initial = new URLSearchParams(location.search);
for (const key of ["station", "robot", "policy"]) {
  const value = initial.get(key);
  if (value) { const select = /** @type {HTMLSelectElement} */ (form.elements.namedItem(key)); select.append(el("option", { value }, [value])); select.value = value; }
}
load();
setInterval(load, REFRESH_MS);
