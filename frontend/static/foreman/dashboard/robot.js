// @ts-check
// Robot page: large video with camera switcher, take control → drive by keyboard, gamepad or
// on-screen pad (teleop or shared-autonomy nudges), hand back, e-stop (always visible, Esc),
// clear e-stop for those who may, live latency figures. When video latency exceeds the
// threshold, or the picture stops, driving is switched off (supervisory mode): the robot's
// deadman then holds it within 200 ms.

import { AlertQueue } from "../lib/alerts.js";
import { FleetSocket, el } from "../lib/socket.js";
import { RobotVideo } from "../lib/video.js";

const config = JSON.parse(/** @type {HTMLElement} */ (document.getElementById("page-config")).textContent || "{}");
const NAME = /** @type {string} */ (config.robot);
// A person may ask for a stricter threshold (`?max_latency_ms=120`), never a looser one.
const askedLatencyMs = Number(new URLSearchParams(location.search).get("max_latency_ms"));
const MAX_LATENCY_MS = askedLatencyMs > 0 ? Math.min(askedLatencyMs, config.maxLatencyMs) : /** @type {number} */ (config.maxLatencyMs);
const SEND_INTERVAL_MS = 50;  // 20 Hz: well inside the agent's 200 ms deadman
const SPEED_M_S = { teleop: 0.05, shared: 0.02 };
const FINE = 0.2;
const SPIN_REV_S = 2.5;

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const socket = new FleetSocket();
const video = /** @type {HTMLVideoElement} */ ($("video"));
const message = $("message");
const buttons = {
  claimTeleop: /** @type {HTMLButtonElement} */ ($("claim-teleop")), claimShared: /** @type {HTMLButtonElement} */ ($("claim-shared")),
  takeover: /** @type {HTMLButtonElement} */ ($("takeover")), release: /** @type {HTMLButtonElement} */ ($("release")),
  pause: /** @type {HTMLButtonElement} */ ($("pause")), resume: /** @type {HTMLButtonElement} */ ($("resume")),
  estop: /** @type {HTMLButtonElement} */ ($("estop")), clear: /** @type {HTMLButtonElement} */ ($("clear-estop")),
};
const clearConfirm = /** @type {HTMLInputElement} */ ($("clear-confirm"));

/** @type {RobotVideo|null} */
let player = null;
/** @type {{id: string, mode: string, expiresAt: number, grantedAt: number, confirmed: boolean}|null} the lease this page holds */
let lease = null;
let heartbeatTimer = 0;
let sendTimer = 0;
let seq = 0;
let arm = /** @type {"left"|"right"} */ ("left");
let gripClosed = false;
/** @type {Set<string>} */
const held = new Set();
let supervisory = false;
let slowChecks = 0;
let fastChecks = 0;
let lastGamepadButtons = /** @type {boolean[]} */ ([]);
/**
 * How this robot is driven, from its declaration (GET /api/robots/NAME/features, docs/protocol.md
 * `features.teleop`); until it arrives (or for a robot that declares nothing), two arms with grippers.
 * @type {{space: string, arms: ("left"|"right")[], spin: string|null, grip: boolean, axes: string}}
 */
let teleopSpec = { space: "end_effector", arms: ["left", "right"], spin: "spin", grip: true, axes: "" };
let drivable = true;  // false: the robot declares that it cannot be driven remotely

/** @param {string} text @param {boolean} [isError] */
function say(text, isError = false) {
  message.textContent = text;
  message.className = `message${isError ? " error" : ""}`;
}

/** @param {any} error */
function refusal(error) {
  if (error.code === "conflict" && error.data?.holder) return `Refused: ${error.data.holder} holds control of ${NAME}.`;
  return `Refused: ${error.message}`;
}

// ---------------------------------------------------------------- video

function ensurePlayer() {
  const robot = socket.robots.get(NAME);
  if (player || !robot) return;
  player = new RobotVideo(socket, NAME, video, { camera: localStorage.getItem(`foreman.camera.${NAME}`) || robot.cameras[0], teleop: socket.can("control"),
    allCameras: new URLSearchParams(location.search).get("cameras") !== "one" }); // ?cameras=one: the big view only (less upload)
  player.addEventListener("state", render);
  player.addEventListener("streams", renderThumbnails);
  player.start();
  renderCameras();
}

function renderCameras() {
  const robot = socket.robots.get(NAME);
  if (!robot || !player) return;
  const box = $("cameras");
  box.replaceChildren(...robot.cameras.map((camera, index) => {
    const button = el("button", { type: "button", "aria-pressed": String(player?.camera === camera), title: `camera ${index + 1}` }, [camera.replace("_", " ")]);
    button.addEventListener("click", () => selectCamera(camera));
    return button;
  }));
}

/** The other cameras, small, beside the big one (every camera arrives at once, peer to peer). */
function renderThumbnails() {
  const box = $("thumbs");
  if (!player) return;
  const others = [...player.streams.entries()].filter(([camera]) => camera !== player?.camera);
  box.hidden = others.length === 0;
  box.replaceChildren(...others.map(([camera, stream]) => {
    const thumb = /** @type {HTMLVideoElement} */ (el("video", { muted: "", playsinline: "", autoplay: "", "aria-label": `${NAME} ${camera.replace("_", " ")} (show big)`,
      "data-camera": camera }));
    thumb.muted = true;
    thumb.srcObject = stream;
    thumb.play().catch(() => {});
    const figure = el("button", { type: "button", class: "thumb", title: `show ${camera.replace("_", " ")}` }, [thumb, el("span", {}, [camera.replace("_", " ")])]);
    figure.addEventListener("click", () => selectCamera(camera));
    return figure;
  }));
}

/** @param {string} camera */
function selectCamera(camera) {
  localStorage.setItem(`foreman.camera.${NAME}`, camera);
  player?.setCamera(camera);
  renderCameras();
}

// ---------------------------------------------------------------- custody

/** @param {"teleop"|"shared"} mode @param {boolean} takeover */
async function claim(mode, takeover) {
  say(takeover ? "Taking over…" : "Claiming control…");
  try {
    const data = await socket.request({ type: "claim", robot: NAME, mode, takeover });
    holdLease(data.lease);
    say(`You hold ${NAME} (${mode === "shared" ? "shared autonomy: your keys nudge the policy" : "teleop"}).`);
  } catch (error) {
    say(refusal(error), true);
  }
  render();
}

/** @param {any} granted */
function holdLease(granted) {
  lease = { id: granted.id, mode: granted.mode, expiresAt: Date.parse(granted.expires_at), grantedAt: performance.now(), confirmed: false };
  const pose = socket.robots.get(NAME)?.telemetry?.arms?.[arm];
  gripClosed = Boolean(pose && pose.grip > 0.5);
  seq = 0;
  clearInterval(heartbeatTimer);
  clearInterval(sendTimer);
  heartbeatTimer = window.setInterval(heartbeat, Math.max(500, (socket.leaseTtlS * 1000) / 3));
  sendTimer = window.setInterval(sendCommand, SEND_INTERVAL_MS);
}

/** @param {string} why */
function dropLease(why) {
  clearInterval(heartbeatTimer);
  clearInterval(sendTimer);
  if (lease && why) say(why, why.startsWith("Control lost"));
  lease = null;
  held.clear();
  render();
}

async function heartbeat() {
  if (!lease) return;
  try {
    const data = await socket.request({ type: "heartbeat", robot: NAME, lease_id: lease.id });
    if (lease && data.lease) lease.expiresAt = Date.parse(data.lease.expires_at);
  } catch (error) {
    const e = /** @type {any} */ (error);
    const robot = socket.robots.get(NAME);
    if (e.code === "stale_lease" || e.code === "conflict" || e.code === "estopped") {
      dropLease(robot?.estopped || e.code === "estopped" ? lostToEstop(robot) : `Control lost: ${e.message}`);
    }
  }
}

async function release() {
  if (!lease) return;
  const id = lease.id;
  try {
    await socket.request({ type: "release", robot: NAME, lease_id: id });
    dropLease(`Handed ${NAME} back to the policy.`);
  } catch (error) {
    say(refusal(error), true);
  }
}

/** @param {"pause"|"resume"} verb */
async function command(verb) {
  try {
    await socket.request({ type: verb, robot: NAME });
    say(verb === "pause" ? `${NAME} pauses at the next safe point.` : `${NAME} resumes.`);
  } catch (error) {
    say(refusal(error), true);
  }
}

// ---------------------------------------------------------------- e-stop

// An e-stop ends custody at the server and the robot: after it is cleared the robot holds, and
// driving it needs a new claim. Say so plainly, whoever pressed it.
const LOST_TO_ESTOP = lostToEstop(undefined);

/** @param {import("../lib/socket.js").Robot|undefined} robot */
function lostToEstop(robot) {
  const by = robot?.estopped_by ? ` (pressed by ${robot.estopped_by})` : "";
  return `Control lost to the e-stop${by}: ${NAME} holds. Once the e-stop is cleared, take control again to drive it.`;
}

async function estop() {
  buttons.estop.disabled = true;
  try {
    await socket.request({ type: "estop", robot: NAME, reason: "e-stop from the robot page" }, 2000);
    say(`${NAME} e-stopped.`);
    dropLease(LOST_TO_ESTOP);
  } catch (error) {
    // The socket may be what failed: the HTTP API is a second way to the same latch.
    try {
      const csrf = /** @type {HTMLInputElement|null} */ (document.querySelector("input[name=csrfmiddlewaretoken]"))?.value || "";
      const response = await fetch(`/api/robots/${encodeURIComponent(NAME)}/estop`, {
        method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
        body: JSON.stringify({ reason: "e-stop from the robot page (HTTP fallback)" }),
      });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      say(`${NAME} e-stopped (over HTTP: the live connection was down).`);
      dropLease(LOST_TO_ESTOP);
    } catch (fallbackError) {
      say(`E-STOP FAILED: ${/** @type {Error} */ (fallbackError).message}. Use the station's physical e-stop.`, true);
    }
  } finally {
    buttons.estop.disabled = false;
  }
}

async function clearEstop() {
  try {
    await socket.request({ type: "clear_estop", robot: NAME });
    clearConfirm.checked = false;
    say(`E-stop cleared. ${NAME} stays in hold until someone resumes it or takes control.`);
  } catch (error) {
    say(refusal(error), true);
  }
}

// ---------------------------------------------------------------- driving

const KEY_ACTIONS = /** @type {Record<string, string>} */ ({
  w: "forward", s: "back", a: "left", d: "right", r: "up", f: "down", t: "spin",
  arrowup: "forward", arrowdown: "back", arrowleft: "left", arrowright: "right",
});

function velocity() {
  const mode = lease?.mode === "shared" ? "shared" : "teleop";
  const speed = SPEED_M_S[mode] * (held.has("fine") ? FINE : 1);
  let vx = 0, vy = 0, vz = 0, spin = 0;
  if (held.has("left")) vx -= speed;
  if (held.has("right")) vx += speed;
  if (held.has("forward")) vy += speed;
  if (held.has("back")) vy -= speed;
  if (held.has("up")) vz += speed;
  if (held.has("down")) vz -= speed;
  if (held.has("spin")) spin = SPIN_REV_S;
  const pad = readGamepad();
  if (pad) {
    vx += pad.vx * speed; vy += pad.vy * speed; vz += pad.vz * speed; spin = Math.max(spin, pad.spin * SPIN_REV_S);
  }
  return { vx, vy, vz, spin };
}

/** The first connected gamepad: left stick x/y, right stick y for height, right trigger spins (what the robot declares), A toggles grip, LB/RB pick the arm. */
function readGamepad() {
  const pads = typeof navigator.getGamepads === "function" ? navigator.getGamepads() : [];
  const pad = [...pads].find((p) => p && p.connected);
  const label = $("gamepad");
  if (!pad) { label.textContent = ""; return null; }
  label.textContent = `gamepad: ${pad.id.slice(0, 32)}`;
  const dead = (/** @type {number} */ v) => (Math.abs(v) < 0.15 ? 0 : v);
  const pressed = pad.buttons.map((b) => b.pressed);
  const edge = (/** @type {number} */ i) => pressed[i] && !lastGamepadButtons[i];
  if (edge(0)) gripClosed = !gripClosed;
  if (edge(4)) setArm("left");
  if (edge(5)) setArm("right");
  lastGamepadButtons = pressed;
  return { vx: dead(pad.axes[0] || 0), vy: -dead(pad.axes[1] || 0), vz: -dead(pad.axes[3] || 0), spin: pad.buttons[7]?.value || 0 };
}

/** @type {Map<number, number>} seq → performance.now() it was sent; the robot's teleop_state echoes some */
const sentAt = new Map();
/** Command round trip by the robot's teleop_state echo (what the WebSocket fallback shows). */
let appliedRttMs = NaN;

socket.addEventListener("teleop_state", (event) => {
  const state = /** @type {CustomEvent} */ (event).detail;
  if (state.robot !== NAME || !lease || state.lease_id !== lease.id) return;
  const sent = sentAt.get(state.seq);
  if (sent !== undefined) appliedRttMs = performance.now() - sent;
});

function sendCommand() {
  if (!lease) return;
  // Supervisory mode: no motion commands at all, so the agent's deadman holds the robot.
  if (supervisory) return;
  seq += 1;
  const body = { type: "teleop", lease_id: lease.id, seq, sent_ms: performance.timeOrigin + performance.now(), arm, ...velocity(),
    ...(teleopSpec.grip ? { grip: gripClosed ? "close" : "open" } : {}) };
  sentAt.set(seq, performance.now());
  if (sentAt.size > 200) sentAt.delete(/** @type {number} */ (sentAt.keys().next().value));
  if (!player || !player.sendTeleop(body)) socket.send({ ...body, robot: NAME });  // WebSocket fallback
}

/** @param {"left"|"right"} side */
function setArm(side) {
  if (!teleopSpec.arms.includes(side)) return;
  arm = side;
  const pose = socket.robots.get(NAME)?.telemetry?.arms?.[side];
  gripClosed = Boolean(pose && pose.grip > 0.5);
  for (const button of document.querySelectorAll("[data-arm]")) button.setAttribute("aria-pressed", String(button.getAttribute("data-arm") === side));
}

function assessLatency() {
  if (!lease || !player) { supervisory = false; slowChecks = 0; $("latency-warning").hidden = true; return; }
  const g2g = player.latencyMs();
  const rtt = player.commandRttMs();
  const noVideo = !player.receiving();
  const slow = noVideo || g2g > MAX_LATENCY_MS || rtt / 2 > MAX_LATENCY_MS;
  if (slow) { slowChecks += 1; fastChecks = 0; } else { fastChecks += 1; slowChecks = 0; }
  if (!supervisory && slowChecks >= 2) supervisory = true;
  if (supervisory && fastChecks >= 6) supervisory = false;  // 3 s of good figures before driving again
  const box = $("latency-warning");
  box.hidden = !supervisory;
  if (supervisory) {
    const why = noVideo ? "the video stopped" : `video latency ${Number.isFinite(g2g) ? g2g.toFixed(0) : "?"} ms is above ${MAX_LATENCY_MS} ms`;
    box.textContent = `Direct driving is off: ${why}. The robot holds; you can still pause, hand back or e-stop. Driving comes back after 3 s of good figures.`;
  }
}

document.addEventListener("keydown", (event) => {
  const target = /** @type {HTMLElement} */ (event.target);
  if (event.key === "Escape") { event.preventDefault(); estop(); return; }
  if (event.ctrlKey || event.metaKey || event.altKey || ["INPUT", "SELECT", "TEXTAREA"].includes(target.tagName)) return;
  const key = event.key.toLowerCase();
  if (key === "c") {
    const robot = socket.robots.get(NAME);
    if (robot && player) selectCamera(robot.cameras[(robot.cameras.indexOf(player.camera) + 1) % robot.cameras.length]);
    return;
  }
  if (!lease) return;
  if (event.key === "Shift") held.add("fine");
  if (KEY_ACTIONS[key]) {
    event.preventDefault();
    if (!held.has(KEY_ACTIONS[key])) { held.add(KEY_ACTIONS[key]); sendCommand(); }  // at once, not at the next 50 ms tick
  }
  if (key === "g" && !event.repeat) gripClosed = !gripClosed;
  if (key === "1") setArm("left");
  if (key === "2") setArm("right");
  renderPad();
});
document.addEventListener("keyup", (event) => {
  const key = event.key.toLowerCase();
  if (event.key === "Shift") held.delete("fine");
  if (KEY_ACTIONS[key] && held.delete(KEY_ACTIONS[key])) sendCommand();  // stopping is as urgent as starting
  renderPad();
});
window.addEventListener("blur", () => { held.clear(); renderPad(); });  // keys released elsewhere never stick

for (const button of document.querySelectorAll("[data-hold]")) {
  const action = /** @type {string} */ (button.getAttribute("data-hold"));
  const press = (/** @type {Event} */ e) => { e.preventDefault(); held.add(action); renderPad(); };
  const lift = () => { held.delete(action); renderPad(); };
  button.addEventListener("pointerdown", press);
  button.addEventListener("pointerup", lift);
  button.addEventListener("pointerleave", lift);
  button.addEventListener("pointercancel", lift);
}
$("grip").addEventListener("click", () => { gripClosed = !gripClosed; renderPad(); });
for (const button of document.querySelectorAll("[data-arm]")) {
  button.addEventListener("click", () => setArm(/** @type {"left"|"right"} */ (button.getAttribute("data-arm"))));
}

function renderPad() {
  for (const button of document.querySelectorAll("[data-hold]")) button.classList.toggle("held", held.has(button.getAttribute("data-hold") || ""));
  $("grip").textContent = gripClosed ? "grip ■ G" : "grip □ G";
  $("grip").setAttribute("aria-pressed", String(gripClosed));
}

/** @type {string[]} the cycle's phases in order, as the robot declares them ([]: free-text phases) */
let phases = [];

/** @param {string[]} declared */
function showPhases(declared) {
  phases = declared;
  const list = $("phases");
  list.replaceChildren(...declared.map((phase) => el("li", { "data-phase": phase }, [phase.replaceAll("_", " ")])));
  list.hidden = declared.length === 0;
}

/** Mark the phase the cycle is in, and those it has passed (a lost grasp goes back). @param {string | null} current */
function markPhase(current) {
  const at = current == null ? -1 : phases.indexOf(current);
  $("phases").querySelectorAll("li").forEach((item, index) => {
    item.classList.toggle("passed", at >= 0 && index < at);
    item.classList.toggle("now", index === at);
    if (index === at) item.setAttribute("aria-current", "step"); else item.removeAttribute("aria-current");
  });
}

/** Build the teleop panel from the robot's declaration: its arms, what spin does, whether it grips. */
async function loadTeleopSpec() {
  let response;
  try {
    response = await fetch(`/api/robots/${encodeURIComponent(NAME)}/features`, { credentials: "same-origin" });
  } catch {
    return;  // keep the defaults; the next page load asks again
  }
  if (!response.ok) return;  // 404: the robot has declared nothing (an older agent)
  const features = await response.json();
  showPhases(features.phases || []);
  drivable = Boolean(features.teleop);
  if (features.teleop) teleopSpec = features.teleop;
  for (const button of document.querySelectorAll("[data-arm]")) {
    /** @type {HTMLElement} */ (button).hidden = !teleopSpec.arms.includes(/** @type {"left"|"right"} */ (button.getAttribute("data-arm")));
  }
  $("keys-arms").hidden = teleopSpec.arms.length < 2;
  const spin = /** @type {HTMLElement} */ (document.querySelector("[data-hold=spin]"));
  spin.hidden = !teleopSpec.spin;
  spin.setAttribute("aria-label", teleopSpec.spin || "spin");
  $("keys-spin").hidden = !teleopSpec.spin;
  $("keys-spin-what").textContent = teleopSpec.spin || "";
  $("grip").hidden = !teleopSpec.grip;
  $("keys-grip").hidden = !teleopSpec.grip;
  $("teleop-space").textContent = teleopSpec.space === "joint"
    ? `Joint jog: ${teleopSpec.axes || "the keys move the robot's joints"}.`
    : "The keys move the gripper in the station's frame (m/s).";
  setArm(teleopSpec.arms.includes(arm) ? arm : teleopSpec.arms[0]);
  render();
}

// ---------------------------------------------------------------- rendering

/** @param {any} pose */
function poseText(pose) {
  if (!pose) return "—";
  return `x ${pose.x_mm.toFixed(1)} · y ${pose.y_mm.toFixed(1)} · z ${pose.z_mm.toFixed(1)} mm · ${pose.grip > 0.5 ? "closed" : "open"}${pose.holding ? " · holding" : ""}`;
}

/** @param {string} id @param {string} text @param {boolean} [bad] */
function figure(id, text, bad = false) {
  const node = $(id);
  node.textContent = text;
  node.classList.toggle("bad", bad);
}

function render() {
  const robot = socket.robots.get(NAME);
  const connection = $("connection");
  connection.dataset.state = socket.state;
  connection.textContent = socket.state === "open" ? "Live" : socket.state === "denied" ? "Your account may not view this robot."
    : "Connection to the server lost — reconnecting. What you see may be out of date; e-stop still tries the HTTP API.";
  const status = socket.status(NAME);
  const badge = $("badge");
  badge.className = `badge ${status.key}`;
  badge.textContent = status.label;
  if (!robot) return;
  ensurePlayer();
  $("station").textContent = `${robot.station || "no station"} · takt ${robot.takt_s} s · ${robot.policy_version || "no policy"}`;
  const t = robot.telemetry;
  const fresh = !["stale", "offline", "unknown"].includes(status.key);
  $("cycle").textContent = t && fresh
    ? `Cycle ${t.cycle_index} · ${t.phase.replaceAll("_", " ")} · ${(t.progress * 100).toFixed(0)}% · ${t.takt_elapsed_s.toFixed(1)} / ${t.takt_s} s${t.warning ? ` · ⚠ ${t.warning}` : ""}`
    : status.key === "offline" ? "The robot is offline." : "No fresh telemetry from the robot.";
  markPhase(t && fresh ? t.phase : null);

  // Our lease ended elsewhere (expiry, takeover, e-stop)? The claim's answer can arrive before the
  // robot's status shows the new lease, so judge only once the status has shown it (or 3 s passed).
  if (lease && robot.lease?.id === lease.id) lease.confirmed = true;
  if (lease && robot.lease?.id !== lease.id && (robot.estopped || lease.confirmed || performance.now() - lease.grantedAt > 3000)) {
    dropLease(robot.estopped ? lostToEstop(robot) : "Control lost: the lease ended (expired or taken over).");
  }
  const mine = Boolean(lease);
  const other = robot.lease && !mine ? robot.lease : null;
  $("holder").textContent = mine ? `You hold control (${lease?.mode}).` : other ? `${other.holder} holds control (${other.mode}).` : "Nobody holds control.";
  const canControl = socket.can("control") && robot.online && !robot.estopped;
  buttons.claimTeleop.hidden = !socket.can("control") || mine;
  buttons.claimShared.hidden = !socket.can("control") || mine;
  buttons.claimTeleop.disabled = !canControl || !drivable;
  buttons.claimShared.disabled = !canControl || !drivable;
  buttons.claimTeleop.title = drivable ? "" : `${NAME} declares that it cannot be driven remotely`;
  buttons.takeover.hidden = !(socket.can("takeover") && other);
  buttons.release.hidden = !mine;
  buttons.pause.hidden = buttons.resume.hidden = !socket.can("estop");
  buttons.estop.hidden = !socket.can("estop");
  $("teleop").hidden = !mine;
  $("drive-mode").textContent = lease?.mode === "shared" ? "(shared autonomy: nudges add to the policy)" : "(teleop)";

  const latched = robot.estopped || robot.mode === "estopped";
  $("estop-latched").hidden = !latched;
  const by = robot.estopped_by ? ` by ${robot.estopped_by}` : "";
  $("estop-who").textContent = latched ? `${by} — the robot will not move until an authorized person clears it; control must then be taken again.` : "";
  $("clear-box").hidden = !socket.can("clear_estop");
  buttons.clear.disabled = !clearConfirm.checked;

  // Video overlay and figures.
  let overlay = "";
  if (!robot.online) overlay = "offline";
  else if (!player || player.state === "connecting") overlay = "connecting…";
  else if (["full", "offline", "error"].includes(player.state)) overlay = player.detail;
  else if (player.state !== "live") overlay = "video lost · reconnecting…";
  else if (player.frames > 0 && !player.receiving()) overlay = "video stalled";
  $("overlay").textContent = overlay;
  $("overlay").hidden = !overlay;
  const g2g = player ? player.latencyMs() : NaN;
  const rtt = player ? player.commandRttMs() : NaN;
  figure("f-mode", fresh && t ? t.mode : status.label);
  figure("f-g2g", Number.isFinite(g2g) ? `${g2g.toFixed(0)} ms` : "—", g2g > MAX_LATENCY_MS);
  const route = player ? (player.via === "sfu" ? " · via the video server" : player.sfuNote ? ` · ${player.sfuNote}` : "") : "";
  figure("f-video", player ? `${player.state}${player.frames ? ` · ${player.frames} frames` : ""}${route}` : "—", Boolean(player && player.state !== "live"));
  const viaChannel = player?.teleop?.readyState === "open";
  const oneWay = t && fresh && t.latency?.command_ms != null ? ` · ${t.latency.command_ms.toFixed(1)} ms to the robot` : "";
  const fallback = Number.isFinite(appliedRttMs) && lease ? `WebSocket fallback · ${appliedRttMs.toFixed(0)} ms until applied` : "WebSocket fallback";
  figure("f-rtt", (Number.isFinite(rtt) && viaChannel ? `${rtt.toFixed(1)} ms round trip (data channel)` : viaChannel ? "measuring…" : fallback) + oneWay);
  const fault = socket.recentFault(NAME);
  figure("f-fault", fault ? `${fault.code}${fault.detail ? `: ${fault.detail}` : ""} (${new Date(fault.at).toLocaleTimeString()})` : "none", Boolean(fault));
  figure("f-server", Number.isFinite(socket.serverRttMs) ? `${socket.serverRttMs.toFixed(0)} ms` : "—");
  const left = lease ? (lease.expiresAt - Date.now()) / 1000 : NaN;
  figure("f-lease", lease ? `${Math.max(0, left).toFixed(1)} s (renewed every ${(socket.leaseTtlS / 3).toFixed(1)} s)` : other ? `held by ${other.holder}` : "—", lease !== null && left < 1.5);
  figure("f-conf", t && fresh && typeof t.confidence === "number" ? t.confidence.toFixed(2) : "—", Boolean(t && typeof t.confidence === "number" && t.confidence < 0.5));
  figure("f-inference", t && fresh && t.latency?.inference_ms != null ? `${t.latency.inference_ms.toFixed(0)} ms` : "—");
  figure("f-torque", t && fresh && t.torque_nm != null ? `${t.torque_nm.toFixed(2)} N·m` : "—");
  if (t?.torque_nm != null) $("f-torque-row").hidden = false;  // shown once the robot has reported a torque (a nut driver's)
  figure("f-left", fresh ? poseText(t?.arms?.left) : "—");
  figure("f-right", fresh ? poseText(t?.arms?.right) : "—");
  for (const side of /** @type {("left"|"right")[]} */ (["left", "right"])) $(`f-${side}-row`).hidden = !teleopSpec.arms.includes(side);
}

buttons.claimTeleop.addEventListener("click", () => claim("teleop", false));
buttons.claimShared.addEventListener("click", () => claim("shared", false));
buttons.takeover.addEventListener("click", () => { if (confirm(`Take ${NAME} over from its current holder?`)) claim("teleop", true); });
buttons.release.addEventListener("click", release);
buttons.pause.addEventListener("click", () => command("pause"));
buttons.resume.addEventListener("click", () => command("resume"));
buttons.estop.addEventListener("click", estop);
buttons.clear.addEventListener("click", clearEstop);
clearConfirm.addEventListener("change", render);

socket.addEventListener("state", () => { if (socket.state !== "open") dropLease(lease ? "Control lost: the connection to the server dropped (the robot holds)." : ""); render(); });
socket.addEventListener("snapshot", () => { render(); renderCameras(); });
socket.addEventListener("robot", render);
socket.addEventListener("telemetry", render);
socket.addEventListener("fault", render);
setInterval(() => { assessLatency(); render(); }, 500);

new AlertQueue(socket, {
  list: $("alert-list"), empty: $("alert-empty"), count: $("alert-count"), robot: NAME,
});

setArm("left");
renderPad();
render();
socket.connect();
loadTeleopSpec();
Object.assign(window, { foreman: { socket, get player() { return player; }, get lease() { return lease; }, get seq() { return seq; } } });
