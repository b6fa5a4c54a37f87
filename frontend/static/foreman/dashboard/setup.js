// @ts-check
// Fleet setup (admins): GET /api/fleet/layout drawn as sites > lines > stations > robots, with the
// changes /api/fleet/ offers. A new or rotated token is shown once, with the agent's command line.

import { api } from "../lib/http.js";
import { el } from "../lib/socket.js";

const layoutBox = /** @type {HTMLElement} */ (document.getElementById("layout"));
const status = /** @type {HTMLElement} */ (document.getElementById("status"));
const tokenBox = /** @type {HTMLElement} */ (document.getElementById("token-box"));
/** @type {any} */
let layout = { sites: [], unassigned: [] };
let shownToken = "";

const enc = encodeURIComponent;

/** @param {string} text @param {boolean} [bad] */
function say(text, bad = false) {
  status.textContent = text;
  status.dataset.bad = bad ? "1" : "";
}

/** Run one change, say what happened (or why not), and redraw. @param {() => Promise<any>} change */
async function act(change) {
  try {
    const result = await change();
    if (result?.token) showToken(result.robot, result.token);
    say(result?.detail || (result?.token ? `${result.robot}: a new token` : "Saved"));
  } catch (error) {
    say(/** @type {Error} */ (error).message, true);
  }
  await load();
}

/** @param {string} robot @param {string} token */
function showToken(robot, token) {
  shownToken = token;
  /** @type {HTMLElement} */ (document.getElementById("token-robot")).textContent = robot;
  /** @type {HTMLElement} */ (document.getElementById("token-command")).textContent =
    `python -m robot_agent --server ${location.origin} --token ${token} --name ${robot} --robot ...`;
  tokenBox.hidden = false;
  tokenBox.scrollIntoView({ block: "nearest" });
}

/** @param {string} label @param {() => void} onClick @param {Record<string, string>} [attrs] */
function button(label, onClick, attrs = {}) {
  const node = el("button", { type: "button", ...attrs }, [label]);
  node.addEventListener("click", onClick);
  return node;
}

/** Every active station, as [name, "site / line / station"]. @returns {[string, string][]} */
function stations() {
  return layout.sites.flatMap((/** @type {any} */ s) => s.lines.flatMap((/** @type {any} */ l) =>
    l.stations.map((/** @type {any} */ st) => /** @type {[string, string]} */ ([st.name, `${s.name} / ${l.name} / ${st.name}`]))));
}

/** @param {any} robot */
function robotRow(robot) {
  const move = /** @type {HTMLSelectElement} */ (el("select", { "aria-label": `Station of ${robot.name}` },
    [el("option", { value: "" }, ["no station"]), ...stations().map(([name, label]) => el("option", { value: name }, [label]))]));
  move.value = robot.station || "";
  move.addEventListener("change", () => act(() => api(`/api/fleet/robots/${enc(robot.name)}`, { station: move.value || null }, "PATCH")));
  const token = robot.token_prefix ? `token ${robot.token_prefix}…` : "no token";
  return el("li", { class: "setup-robot", "data-robot": robot.name }, [
    el("a", { href: `/robots/${enc(robot.name)}/` }, [robot.name]), " ",
    el("span", { class: `badge ${robot.online ? "autonomous" : "offline"}` }, [robot.online ? "online" : "offline"]), " ",
    el("span", { class: "muted" }, [[token, robot.declared, robot.policy_version].filter(Boolean).join(" · ")]), " ",
    move, " ",
    button(robot.token_prefix ? "Rotate token" : "Issue token", () => {
      if (!robot.token_prefix || confirm(`Rotate ${robot.name}'s token? Its agent is disconnected until it has the new one.`)) {
        act(() => api(`/api/fleet/robots/${enc(robot.name)}/token`, {}));
      }
    }),
    ...(robot.token_prefix ? [" ", button("Revoke token", () => {
      if (confirm(`Revoke ${robot.name}'s token? It is disconnected and cannot connect until a new one is issued.`)) {
        act(() => api(`/api/fleet/robots/${enc(robot.name)}/token`, undefined, "DELETE"));
      }
    })] : []), " ",
    button("Retire", () => {
      if (confirm(`Retire ${robot.name}? It leaves the fleet; its episodes and audit trail stay.`)) {
        act(() => api(`/api/fleet/robots/${enc(robot.name)}/retire`, {}));
      }
    }, { class: "danger" }),
  ]);
}

/** @param {any} station */
function stationBlock(station) {
  const takt = /** @type {HTMLInputElement} */ (el("input", { type: "number", min: "1", step: "any", value: String(station.takt_s), "aria-label": `Takt of ${station.name} (s)` }));
  const task = /** @type {HTMLInputElement} */ (el("input", { value: station.task, "aria-label": `Task of ${station.name}`, size: "34" }));
  return el("div", { class: "setup-station", "data-station": station.name }, [
    el("h4", {}, [station.name]),
    el("div", { class: "filters" }, [
      el("label", {}, ["Task", task]), el("label", {}, ["Takt (s)", takt]),
      button("Save", () => act(() => api(`/api/fleet/stations/${enc(station.name)}`, { task: task.value, takt_s: Number(takt.value) }, "PATCH"))),
      button("Retire station", () => {
        if (confirm(`Retire station ${station.name}?`)) act(() => api(`/api/fleet/stations/${enc(station.name)}/retire`, {}));
      }, { class: "danger" }),
    ]),
    station.robots.length ? el("ul", {}, station.robots.map(robotRow)) : el("p", { class: "muted" }, ["No robots on this station."]),
  ]);
}

function render() {
  const blocks = layout.sites.map((/** @type {any} */ site) => el("section", { class: "setup-site", "data-site": site.name }, [
    el("h3", {}, [site.name, " ", button("Retire site", () => {
      if (confirm(`Retire site ${site.name}?`)) act(() => api(`/api/fleet/sites/${enc(site.name)}/retire`, {}));
    }, { class: "link" })]),
    ...site.lines.map((/** @type {any} */ line) => el("div", { class: "setup-line", "data-line": line.name }, [
      el("h4", {}, [line.name, " ", button("Retire line", () => {
        if (confirm(`Retire line ${line.name}?`)) act(() => api(`/api/fleet/sites/${enc(site.name)}/lines/${enc(line.name)}/retire`, {}));
      }, { class: "link" })]),
      ...(line.stations.length ? line.stations.map(stationBlock) : [el("p", { class: "muted" }, ["No stations on this line."])]),
    ])),
  ]));
  if (layout.unassigned.length) {
    blocks.push(el("section", { class: "setup-site", "data-site": "" }, [el("h3", {}, ["On no station"]), el("ul", {}, layout.unassigned.map(robotRow))]));
  }
  layoutBox.replaceChildren(...(blocks.length ? blocks : [el("p", { class: "muted" }, ["Nothing yet: add a site, a line, a station and a robot."])]));
  fillPickers();
}

function fillPickers() {
  for (const select of /** @type {NodeListOf<HTMLSelectElement>} */ (document.querySelectorAll("select[data-sites]"))) {
    const value = select.value;
    select.replaceChildren(...layout.sites.map((/** @type {any} */ s) => el("option", {}, [s.name])));
    if (value) select.value = value;
  }
  for (const select of /** @type {NodeListOf<HTMLSelectElement>} */ (document.querySelectorAll("select[data-lines]"))) {
    const value = select.value;
    select.replaceChildren(...layout.sites.flatMap((/** @type {any} */ s) => s.lines.map((/** @type {any} */ l) =>
      el("option", { value: JSON.stringify([s.name, l.name]) }, [`${s.name} / ${l.name}`]))));
    if (value) select.value = value;
  }
  for (const select of /** @type {NodeListOf<HTMLSelectElement>} */ (document.querySelectorAll("select[data-stations]"))) {
    const value = select.value;
    select.replaceChildren(el("option", { value: "" }, ["none yet"]), ...stations().map(([name, label]) => el("option", { value: name }, [label])));
    select.value = value;
  }
}

async function load() {
  try {
    layout = await api("/api/fleet/layout");
    render();
  } catch (error) {
    say(`Could not load the fleet: ${/** @type {Error} */ (error).message}`, true);
  }
}

/** @param {string} id @param {(data: FormData) => Promise<any>} submit */
function onSubmit(id, submit) {
  const form = /** @type {HTMLFormElement} */ (document.getElementById(id));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    act(async () => { const result = await submit(data); form.reset(); return result; });
  });
}

onSubmit("add-site", (d) => api("/api/fleet/sites", { name: d.get("name") }));
onSubmit("add-line", (d) => api(`/api/fleet/sites/${enc(String(d.get("site")))}/lines`, { name: d.get("name") }));
onSubmit("add-station", (d) => {
  const [site, line] = JSON.parse(String(d.get("line") || "[]"));
  return api("/api/fleet/stations", { site, line, name: d.get("name"), task: d.get("task"), takt_s: Number(d.get("takt_s")) });
});
onSubmit("add-robot", (d) => api("/api/fleet/robots", { name: d.get("name"), station: d.get("station") || null }));
/** @type {HTMLElement} */ (document.getElementById("token-done")).addEventListener("click", () => { tokenBox.hidden = true; shownToken = ""; });
/** @type {HTMLElement} */ (document.getElementById("token-copy")).addEventListener("click", async () => {
  try { await navigator.clipboard.writeText(shownToken); say("Token copied."); } catch { say("Copy it from the box: this page may not use the clipboard.", true); }
});
load();
