// @ts-check
// Fleet page: one tile per robot (live video, mode badge, cycle progress against takt,
// confidence sparkline, pre-intervention warning) and the alert queue.
// Off-screen tiles close their video after a few seconds so 16+ robots stay cheap.

import { AlertQueue } from "../lib/alerts.js";
import { FleetSocket, el, sparkline } from "../lib/socket.js";
import { RobotVideo } from "../lib/video.js";

const OFFSCREEN_GRACE_MS = 3000;
const TILE_FPS = 15; // a tile is for watching a line: 15 fps is smooth enough and half the robot's encode

/** The width a tile asks the robot for: its on-screen pixels, in steps of 160 (so a resize rarely renegotiates). @param {HTMLVideoElement} video */
function tileWidth(video) {
  const pixels = (video.clientWidth || 320) * (window.devicePixelRatio || 1);
  return Math.min(1280, Math.max(160, Math.ceil(pixels / 160) * 160));
}

const socket = new FleetSocket();
const tilesBox = /** @type {HTMLElement} */ (document.getElementById("tiles"));
const connection = /** @type {HTMLElement} */ (document.getElementById("connection"));
const summary = /** @type {HTMLElement} */ (document.getElementById("summary"));

/** @typedef {{root: HTMLElement, video: HTMLVideoElement, player: RobotVideo|null, badge: HTMLElement,
 *  overlay: HTMLElement, bar: HTMLElement, barLabel: HTMLElement, phase: HTMLElement, spark: HTMLCanvasElement,
 *  conf: HTMLElement, warning: HTMLElement, fault: HTMLElement, policy: HTMLElement, camera: HTMLSelectElement, visible: boolean,
 *  hideTimer: number}} Tile */

/** @type {Map<string, Tile>} */
const tiles = new Map();

const observer = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    const tile = [...tiles.values()].find((t) => t.root === entry.target);
    if (!tile) continue;
    tile.visible = entry.isIntersecting;
    clearTimeout(tile.hideTimer);
    if (tile.visible) ensureVideo(tile);
    else tile.hideTimer = window.setTimeout(() => stopVideo(tile), OFFSCREEN_GRACE_MS);
  }
}, { rootMargin: "100px" });

/** @param {string} name @returns {Tile} */
function createTile(name) {
  const video = /** @type {HTMLVideoElement} */ (el("video", { muted: "", playsinline: "", autoplay: "", "aria-label": `${name} camera` }));
  video.muted = true;
  const camera = /** @type {HTMLSelectElement} */ (el("select", { "aria-label": `${name} camera`, class: "camera" }));
  const spark = /** @type {HTMLCanvasElement} */ (el("canvas", { width: "120", height: "28", "aria-hidden": "true" }));
  const parts = {
    badge: el("span", { class: "badge" }),
    overlay: el("div", { class: "overlay" }, ["connecting…"]),
    bar: el("span"),
    barLabel: el("span", { class: "bar-label" }),
    phase: el("span", { class: "phase" }),
    conf: el("span", { class: "conf" }),
    warning: el("p", { class: "warning", role: "note" }),
    fault: el("p", { class: "fault", role: "alert" }),
    policy: el("span", { class: "policy" }),
  };
  const link = el("a", { href: `/robots/${encodeURIComponent(name)}/`, class: "tile-name" }, [name]);
  const root = el("article", { class: "tile", "data-robot": name, "aria-label": `robot ${name}` }, [
    el("header", {}, [link, parts.badge]),
    el("div", { class: "screen" }, [video, parts.overlay]),
    el("div", { class: "cycle" }, [
      el("div", { class: "takt", role: "progressbar", "aria-label": "cycle time against takt", "aria-valuemin": "0", "aria-valuemax": "100" }, [parts.bar, el("i", { class: "takt-mark" })]),
      parts.barLabel,
    ]),
    el("div", { class: "row" }, [parts.phase, el("span", { class: "spark" }, [spark, parts.conf])]),
    parts.fault,
    parts.warning,
    el("footer", {}, [parts.policy, camera]),
  ]);
  /** @type {Tile} */
  const tile = { root, video, player: null, camera, spark, visible: false, hideTimer: 0, ...parts };
  camera.addEventListener("change", () => {
    localStorage.setItem(`foreman.camera.${name}`, camera.value);
    tile.player?.setCamera(camera.value);
  });
  observer.observe(root);
  return tile;
}

/** @param {Tile} tile */
function ensureVideo(tile) {
  const name = /** @type {string} */ (tile.root.dataset.robot);
  if (tile.player || !tile.visible) return;
  const robot = socket.robots.get(name);
  if (!robot || !robot.online) return;
  tile.player = new RobotVideo(socket, name, tile.video, { camera: tile.camera.value, video: { width: tileWidth(tile.video), fps: TILE_FPS } });
  tile.player.addEventListener("state", () => renderTile(name));
  tile.player.start();
}

/** @param {Tile} tile */
function stopVideo(tile) {
  tile.player?.stop();
  tile.player = null;
  renderTile(/** @type {string} */ (tile.root.dataset.robot));
}

/** @param {string} name */
function renderTile(name) {
  const robot = socket.robots.get(name);
  const tile = tiles.get(name);
  if (!robot || !tile) return;
  const status = socket.status(name);
  tile.root.dataset.status = status.key;
  tile.badge.textContent = status.label;
  tile.badge.className = `badge ${status.key}`;
  const t = robot.telemetry;
  const fresh = status.key !== "stale" && status.key !== "offline" && status.key !== "unknown";
  if (t && fresh) {
    const fraction = Math.min(1.2, t.takt_elapsed_s / t.takt_s);
    tile.bar.style.width = `${Math.min(100, fraction * 100)}%`;
    tile.bar.className = fraction >= 0.95 ? "over" : fraction >= 0.8 ? "late" : "";
    tile.bar.parentElement?.setAttribute("aria-valuenow", String(Math.round(fraction * 100)));
    tile.barLabel.textContent = `${t.takt_elapsed_s.toFixed(0)} / ${t.takt_s.toFixed(0)} s`;
    tile.phase.textContent = `cycle ${t.cycle_index} · ${t.phase.replaceAll("_", " ")} · ${(t.progress * 100).toFixed(0)}%`;
    tile.conf.textContent = typeof t.confidence === "number" ? `conf ${t.confidence.toFixed(2)}` : "conf —";
  } else {
    tile.bar.style.width = "0";
    tile.barLabel.textContent = "— s";
    tile.phase.textContent = status.key === "offline" ? `last seen ${robot.last_seen ? new Date(robot.last_seen).toLocaleTimeString() : "never"}` : "no fresh telemetry";
    tile.conf.textContent = "";
  }
  sparkline(tile.spark, socket.confidence.get(name) || []);
  tile.warning.textContent = t && fresh && t.warning ? `⚠ ${t.warning}` : "";
  tile.warning.hidden = !tile.warning.textContent;
  // A fault is what a supervisor needs to see first: it stays on the tile for a few minutes.
  const fault = socket.recentFault(name);
  tile.fault.textContent = fault ? `✖ fault ${fault.code}${fault.detail ? `: ${fault.detail}` : ""} · ${ago(fault.seenAt)}` : "";
  tile.fault.hidden = !fault;
  tile.policy.textContent = robot.policy_version || "no policy";
  // Video overlay: say plainly when there is no picture, never leave a frozen frame looking live.
  const player = tile.player;
  let overlay = "";
  if (!robot.online) overlay = "offline";
  else if (!tile.visible) overlay = "paused (off screen)";
  else if (!player || player.state === "connecting") overlay = "connecting…";
  else if (["full", "offline", "error"].includes(player.state)) overlay = player.detail;
  else if (player.state === "reconnecting") overlay = "video lost · reconnecting…";
  else if (player.state === "live" && !player.receiving() && player.frames > 0) overlay = "video stalled";
  tile.overlay.textContent = overlay;
  tile.overlay.hidden = !overlay;
  if (!robot.online && tile.player) stopVideo(tile);
  else if (robot.online && tile.visible && !tile.player) ensureVideo(tile);
}

/** @param {number} seenAt performance.now() of the event */
function ago(seenAt) {
  const s = Math.max(0, Math.round((performance.now() - seenAt) / 1000));
  return s < 60 ? `${s} s ago` : `${Math.floor(s / 60)} min ago`;
}

function renderAll() {
  const names = [...socket.robots.keys()].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  for (const name of names) {
    if (!tiles.has(name)) tiles.set(name, createTile(name));
    const tile = /** @type {Tile} */ (tiles.get(name));
    const cameras = socket.robots.get(name)?.cameras || [];
    const current = [...tile.camera.options].map((o) => o.value).join(",");
    if (current !== cameras.join(",")) {
      const saved = localStorage.getItem(`foreman.camera.${name}`) || "";
      tile.camera.replaceChildren(...cameras.map((c) => el("option", { value: c }, [c.replace("_", " ")])));
      if (cameras.includes(saved)) tile.camera.value = saved;
    }
  }
  for (const [name, tile] of tiles) {
    if (!socket.robots.has(name)) { tile.player?.stop(); observer.unobserve(tile.root); tile.root.remove(); tiles.delete(name); }
  }
  tilesBox.replaceChildren(...names.map((n) => /** @type {Tile} */ (tiles.get(n)).root));
  names.forEach(renderTile);
  renderSummary();
}

function renderSummary() {
  /** @type {Record<string, number>} */
  const counts = {};
  for (const name of socket.robots.keys()) {
    const key = socket.status(name).label.startsWith("teleop") ? "teleop" : socket.status(name).key;
    counts[key] = (counts[key] || 0) + 1;
  }
  const order = ["unknown", "help", "estopped", "offline", "stale", "teleop", "warning", "paused", "autonomous"];
  const words = /** @type {Record<string, string>} */ ({ unknown: "unseen (no connection)", help: "need help", stale: "silent" });
  summary.textContent = [`${socket.robots.size} robots`, ...order.filter((k) => counts[k]).map((k) => `${counts[k]} ${words[k] || k}`)].join(" · ");
}

function renderConnection() {
  connection.dataset.state = socket.state;
  connection.textContent = {
    connecting: "Connecting to the server…", open: "Live", reconnecting: "Connection to the server lost — reconnecting. What you see may be out of date.",
    denied: "Your account may not view the fleet.",
  }[socket.state] || socket.state;
}

socket.addEventListener("state", () => { renderConnection(); renderAll(); });
socket.addEventListener("snapshot", renderAll);
socket.addEventListener("robot", (event) => { const name = /** @type {CustomEvent} */ (event).detail; if (!tiles.has(name)) renderAll(); else { renderTile(name); renderSummary(); } });
socket.addEventListener("telemetry", (event) => { for (const name of /** @type {CustomEvent} */ (event).detail) renderTile(name); });
socket.addEventListener("fault", (event) => {
  const name = /** @type {CustomEvent} */ (event).detail.robot;
  renderTile(name);
  const tile = tiles.get(name);
  if (tile) { tile.root.classList.remove("alerting"); void tile.root.offsetWidth; tile.root.classList.add("alerting"); }
});
socket.addEventListener("intervention", (event) => {
  const { intervention, isNew } = /** @type {CustomEvent} */ (event).detail;
  renderTile(intervention.robot);
  renderSummary();
  const tile = tiles.get(intervention.robot);
  if (isNew && tile) { tile.root.classList.remove("alerting"); void tile.root.offsetWidth; tile.root.classList.add("alerting"); }
});
// Staleness is a matter of time passing: re-judge every tile each second.
setInterval(() => { for (const name of tiles.keys()) renderTile(name); renderSummary(); }, 1000);

const queue = new AlertQueue(socket, {
  list: /** @type {HTMLElement} */ (document.getElementById("alert-list")),
  empty: /** @type {HTMLElement} */ (document.getElementById("alert-empty")),
  count: /** @type {HTMLElement} */ (document.getElementById("alert-count")),
  sound: /** @type {HTMLButtonElement} */ (document.getElementById("sound")),
  notify: /** @type {HTMLButtonElement} */ (document.getElementById("notify")),
});

document.addEventListener("keydown", (event) => {
  const target = /** @type {HTMLElement} */ (event.target);
  if (event.ctrlKey || event.metaKey || event.altKey || ["INPUT", "SELECT", "TEXTAREA"].includes(target.tagName)) return;
  if (event.key === "a" || event.key === "A") {
    const top = queue.topUnacknowledged();
    if (top) { event.preventDefault(); queue.acknowledge(top); }
  } else if (event.key === "o" || event.key === "O") {
    const top = queue.items()[0];
    if (top) location.assign(`/robots/${encodeURIComponent(top.robot)}/`);
  }
});

renderConnection();
socket.connect();

// For the browser tests and the curious: the live store and the tiles.
Object.assign(window, { foreman: { socket, tiles } });
