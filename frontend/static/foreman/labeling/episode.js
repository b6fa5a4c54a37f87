// @ts-check
// Clip review: every camera in sync under one clock, the step timeline (mode of each step,
// policy confidence, torque, markers) to read and to seek with, frame stepping, and the label
// form driven by keys. A second reviewer confirms or disputes the current label.

import { api } from "../lib/http.js";
import { el } from "../lib/socket.js";

const config = JSON.parse(/** @type {HTMLElement} */ (document.getElementById("page-config")).textContent || "{}");
const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const MODE_COLORS = /** @type {Record<string, string>} */ ({ robot: "#2f6f4f", pre_intervention: "#b7791f", human: "#b83232", shared: "#6b46c1" });
const MARKER_COLORS = /** @type {Record<string, string>} */ ({ intervention: "#f5b83d", takeover: "#ef4444", end: "#e6e9ee" });

/** @type {any} */
let data = null;
/** @type {HTMLVideoElement[]} */
let videos = [];
let fps = 10;
let duration = 0;
/** @type {number|null} */
let failureT = null;

const form = /** @type {HTMLFormElement} */ ($("label-form"));
const canvas = /** @type {HTMLCanvasElement} */ ($("timeline"));

function main() { return videos[0]; }
/** Frame k of a video covers [k/fps, (k+1)/fps). */
function frameIndex() { return Math.floor(now() * fps + 1e-6); }
function now() { return main() ? main().currentTime : 0; }

/** @param {number} t */
function seek(t) {
  const target = Math.max(0, Math.min(duration, t));
  for (const video of videos) video.currentTime = Math.min(target, (video.duration || duration) - 0.001);
  draw();
}

function syncFollowers() {
  // Followers chase the main camera's clock; a drift over half a frame is corrected.
  const t = now();
  for (const video of videos.slice(1)) {
    if (Math.abs(video.currentTime - t) > 0.5 / fps) video.currentTime = t;
  }
}

function togglePlay() {
  const lead = main();
  if (!lead) return;
  if (lead.paused) { for (const v of videos) v.play().catch(() => {}); } else { for (const v of videos) v.pause(); seek(now()); }
}

/** @param {number} frames */
function step(frames) {
  for (const v of videos) v.pause();
  // Land in the middle of the frame so rounding never shows the neighbour.
  const frame = frameIndex() + frames;
  seek((frame + 0.5) / fps);
}

/** @param {number} direction */
function jumpMarker(direction) {
  const marks = [...(data?.clip?.timeline?.markers || []).map((/** @type {any} */ m) => m.t), ...(failureT != null ? [failureT] : [])].sort((a, b) => a - b);
  const t = now();
  const next = direction > 0 ? marks.find((m) => m > t + 0.05) : [...marks].reverse().find((m) => m < t - 0.05);
  if (next != null) seek(next);
}

// ---------------------------------------------------------------- timeline

function draw() {
  const timeline = data?.clip?.timeline;
  const ctx = canvas.getContext("2d");
  if (!ctx || !timeline) return;
  const dpr = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight || 130;
  if (canvas.width !== Math.round(width * dpr)) { canvas.width = Math.round(width * dpr); canvas.height = Math.round(height * dpr); }
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const x = (/** @type {number} */ t) => (t / Math.max(duration, 0.001)) * width;
  const bandTop = 18, bandHeight = 16, plotTop = 42, plotHeight = height - plotTop - 14;
  // Mode bands.
  for (const segment of timeline.segments) {
    ctx.fillStyle = MODE_COLORS[segment.mode] || "#555";
    ctx.fillRect(x(segment.start), bandTop, Math.max(1, x(segment.end) - x(segment.start)), bandHeight);
  }
  // Phase ticks.
  ctx.fillStyle = "#98a2b3";
  ctx.font = "10px system-ui";
  ctx.fillText("mode", 2, 12);
  // Curves: confidence (0..1) and torque (scaled to its max).
  /** @param {any[]} points @param {string} color @param {number} top */
  const plot = (points, color, top) => {
    ctx.strokeStyle = color; ctx.lineWidth = 1.5; ctx.beginPath();
    let drawing = false;
    for (const [t, v] of points) {
      if (v == null) { drawing = false; continue; }
      const y = plotTop + plotHeight - (v / top) * plotHeight;
      if (drawing) ctx.lineTo(x(t), y); else ctx.moveTo(x(t), y);
      drawing = true;
    }
    ctx.stroke();
  };
  ctx.strokeStyle = "#2a323d"; ctx.strokeRect(0.5, plotTop, width - 1, plotHeight);
  ctx.setLineDash([3, 3]); ctx.strokeStyle = "rgba(245,184,61,.5)";
  for (const level of [0.7, 0.5]) { const y = plotTop + plotHeight - level * plotHeight; ctx.beginPath(); ctx.moveTo(0, y); ctx.lineTo(width, y); ctx.stroke(); }
  ctx.setLineDash([]);
  plot(timeline.confidence, "#4f9cf9", 1);
  const torqueMax = Math.max(1, ...timeline.torque.map((/** @type {any[]} */ p) => p[1] || 0));
  plot(timeline.torque, "#c084fc", torqueMax * 1.1);
  // Markers.
  for (const marker of timeline.markers) {
    ctx.fillStyle = MARKER_COLORS[marker.kind] || "#fff";
    const mx = Math.min(width - 4, Math.max(4, x(marker.t)));
    ctx.beginPath(); ctx.moveTo(mx - 5, 2); ctx.lineTo(mx + 5, 2); ctx.lineTo(mx, 12); ctx.fill();
    ctx.fillRect(mx - 0.5, 12, 1, height - 12);
  }
  if (failureT != null) {
    const fx = x(failureT);
    ctx.fillStyle = "#ef4444";
    ctx.strokeStyle = "#fff"; ctx.lineWidth = 1.5;
    ctx.beginPath(); ctx.moveTo(fx, bandTop - 3); ctx.lineTo(fx + 7, bandTop + 8); ctx.lineTo(fx, bandTop + 19); ctx.lineTo(fx - 7, bandTop + 8); ctx.closePath();
    ctx.fill(); ctx.stroke();
  }
  // Playhead and time axis.
  ctx.fillStyle = "#fff";
  ctx.fillRect(x(now()) - 1, 0, 2, height);
  ctx.fillStyle = "#98a2b3";
  for (let t = 0; t <= duration; t += duration > 60 ? 10 : 5) ctx.fillText(`${t}s`, x(t) + 2, height - 2);
  $("clock").textContent = `${now().toFixed(2)} s · frame ${frameIndex()}`;
  const phase = timeline.phases.find((/** @type {any} */ p) => p.start <= now() && now() < p.end);
  const segment = timeline.segments.find((/** @type {any} */ s) => s.start <= now() && now() < s.end);
  $("phase").textContent = `${segment ? segment.mode.replace("_", "-") : ""}${phase ? ` · ${phase.phase}` : ""}`;
}

function seekFromPointer(/** @type {PointerEvent} */ event) {
  const rect = canvas.getBoundingClientRect();
  seek(((event.clientX - rect.left) / rect.width) * duration);
}
canvas.addEventListener("pointerdown", (event) => { canvas.setPointerCapture(event.pointerId); seekFromPointer(event); });
canvas.addEventListener("pointermove", (event) => { if (event.buttons) seekFromPointer(event); });

// ---------------------------------------------------------------- label form

function selectedMode() {
  const checked = /** @type {HTMLInputElement|null} */ (form.querySelector("input[name=failure_mode]:checked"));
  return checked ? checked.value : "";
}

function showMoment() {
  $("failure-t").textContent = failureT == null ? "—" : `${failureT.toFixed(2)} s`;
  draw();
}

function updateOther() {
  const entry = (data?.taxonomy || []).find((/** @type {any} */ m) => m.key === selectedMode());
  $("other-box").hidden = !(entry && entry.needs_text);
}

/** @param {any} label */
function fillForm(label) {
  const mode = label ? label.failure_mode || "" : data.robot_failure_mode || "";
  const radio = /** @type {HTMLInputElement|null} */ (form.querySelector(`input[name=failure_mode][value="${mode}"]`));
  if (radio) radio.checked = true;
  failureT = label ? label.failure_t : null;
  /** @type {HTMLInputElement} */ (form.elements.namedItem("other_text")).value = label?.other_text || "";
  /** @type {HTMLTextAreaElement} */ (form.elements.namedItem("notes")).value = label?.notes || "";
  const demo = label?.good_demo == null ? "" : String(label.good_demo);
  const demoRadio = /** @type {HTMLInputElement|null} */ (form.querySelector(`input[name=good_demo][value="${demo}"]`));
  if (demoRadio) demoRadio.checked = true;
  updateOther();
  showMoment();
}

async function save() {
  const demo = /** @type {HTMLInputElement|null} */ (form.querySelector("input[name=good_demo]:checked"))?.value;
  const body = {
    failure_mode: selectedMode(), failure_t: failureT, good_demo: demo === "" || demo == null ? null : demo === "true",
    other_text: /** @type {HTMLInputElement} */ (form.elements.namedItem("other_text")).value,
    notes: /** @type {HTMLTextAreaElement} */ (form.elements.namedItem("notes")).value,
  };
  const message = $("form-message");
  try {
    await api(`/api/labeling/episodes/${config.episode}/labels`, body);
    message.textContent = "Saved.";
    message.className = "message";
    await load(false);
  } catch (error) {
    message.textContent = `Not saved: ${/** @type {Error} */ (error).message}`;
    message.className = "message error";
  }
}

/** @param {string} labelId @param {"confirm"|"dispute"} verdict */
async function review(labelId, verdict) {
  const note = verdict === "dispute" ? prompt("Why do you dispute this label?") : "";
  if (verdict === "dispute" && !note) return;
  try {
    await api(`/api/labeling/labels/${labelId}/review`, { verdict, note });
    await load(false);
  } catch (error) {
    $("form-message").textContent = `Refused: ${/** @type {Error} */ (error).message}`;
    $("form-message").className = "message error";
  }
}

function renderHistory() {
  $("history").replaceChildren(...data.labels.map((/** @type {any} */ label) => {
    const actions = [];
    if (config.canLabel && label.current && label.author !== config.user && label.review === "pending") {
      const confirm = el("button", { type: "button" }, ["Confirm"]);
      confirm.addEventListener("click", () => review(label.id, "confirm"));
      const dispute = el("button", { type: "button", class: "danger" }, ["Dispute"]);
      dispute.addEventListener("click", () => review(label.id, "dispute"));
      actions.push(confirm, " ", dispute);
    }
    return el("li", { class: label.current ? "current" : "old", "data-label": label.id }, [
      el("div", {}, [el("strong", {}, [label.failure_mode ? label.failure_mode.replaceAll("_", " ") : "no failure"]),
        label.failure_t != null ? ` at ${label.failure_t.toFixed(2)} s` : "", label.current ? " (current)" : ""]),
      el("div", { class: "muted" }, [`${label.author} · ${new Date(label.created_at).toLocaleString()}`,
        label.good_demo == null ? "" : label.good_demo ? " · good demo" : " · not a good demo"]),
      label.notes ? el("div", {}, [label.notes]) : "",
      el("div", { class: `review ${label.review}` }, [label.review === "pending" ? "awaiting a second reviewer"
        : `${label.review} by ${label.reviewer}${label.review_note ? `: ${label.review_note}` : ""}`]),
      el("div", {}, actions),
    ]);
  }));
  if (!data.labels.length) $("history").replaceChildren(el("li", { class: "muted" }, ["No label yet."]));
}

// ---------------------------------------------------------------- load

/** @param {boolean} first */
async function load(first) {
  data = await api(`/api/labeling/episodes/${config.episode}`);
  $("title").textContent = `${data.robot} · cycle ${data.cycle_index}`;
  $("facts").textContent = `${new Date(data.started_at).toLocaleString()} · ${data.policy_version || "no policy"} · ${data.outcome}`
    + `${data.robot_failure_mode ? ` (${data.robot_failure_mode.replaceAll("_", " ")} by the robot)` : ""}`
    + `${data.duration_s != null ? ` · ${data.duration_s.toFixed(1)} s` : ""} · queue: ${data.queue ? data.queue.state : "not queued"}`;
  const upload = $("upload-state");
  upload.textContent = !data.upload ? "No recording was uploaded for this episode." : data.upload.state === "rejected"
    ? `The upload was rejected: ${data.upload.reason}` : data.upload.state !== "ready" ? `The upload is being processed (${data.upload.state})…` : "";
  upload.className = `message${data.upload?.state === "rejected" ? " error" : ""}`;
  if (first) {
    const modes = $("modes");
    const entries = [{ key: "", label: "No failure" }, ...data.taxonomy];
    modes.append(...entries.map((/** @type {any} */ m, /** @type {number} */ i) => el("label", {}, [
      el("input", { type: "radio", name: "failure_mode", value: m.key }), ` ${m.label} `, i < 10 ? el("kbd", {}, [String(i)]) : "",
    ])));
    modes.addEventListener("change", updateOther);
    fps = data.clip?.fps || 10;
    duration = data.clip?.duration_s || data.duration_s || 0;
    if (data.clip) {
      const cameras = /** @type {string[]} */ (data.clip.cameras);  // the robot's order: its main view first
      videos = cameras.map((camera, index) => {
        const video = /** @type {HTMLVideoElement} */ (el("video", { src: data.clip.videos[camera].url, preload: "auto", muted: "", playsinline: "",
          poster: data.clip.videos[camera].thumbnail || "", "aria-label": `${camera} camera`, "data-camera": camera }));
        video.muted = true;
        const box = el("figure", { class: index === 0 ? "main-video" : "side-video" }, [video, el("figcaption", {}, [camera.replace("_", " ")])]);
        $("videos").append(box);
        return video;
      });
      const lead = videos[0];
      lead.addEventListener("timeupdate", () => { syncFollowers(); draw(); });
      lead.addEventListener("seeked", draw);
      lead.addEventListener("play", () => { $("play").textContent = "Pause"; });
      lead.addEventListener("pause", () => { $("play").textContent = "Play"; });
      lead.addEventListener("loadedmetadata", () => { document.body.dataset.loaded = "true"; draw(); });
      const tick = () => { if (!lead.paused) { syncFollowers(); draw(); } requestAnimationFrame(tick); };
      requestAnimationFrame(tick);
    }
    fillForm(data.labels.find((/** @type {any} */ l) => l.current));
  }
  renderHistory();
  draw();
}

$("play").addEventListener("click", togglePlay);
$("back").addEventListener("click", () => step(-1));
$("fwd").addEventListener("click", () => step(1));
$("speed").addEventListener("change", () => { for (const v of videos) v.playbackRate = Number(/** @type {HTMLSelectElement} */ ($("speed")).value); });
$("set-moment").addEventListener("click", () => { failureT = Math.round(now() * 100) / 100; showMoment(); });
$("clear-moment").addEventListener("click", () => { failureT = null; showMoment(); });
form.addEventListener("submit", (event) => { event.preventDefault(); save(); });
window.addEventListener("resize", draw);

document.addEventListener("keydown", (event) => {
  const target = /** @type {HTMLElement} */ (event.target);
  if (event.ctrlKey && event.key === "Enter") { event.preventDefault(); save(); return; }
  if (event.ctrlKey || event.metaKey || event.altKey || ["INPUT", "SELECT", "TEXTAREA"].includes(target.tagName) && target.getAttribute("type") !== "radio") return;
  const key = event.key;
  if (key === " ") { event.preventDefault(); togglePlay(); }
  else if (key === ",") step(-1);
  else if (key === ".") step(1);
  else if (key === "ArrowLeft") { event.preventDefault(); seek(now() - 1); }
  else if (key === "ArrowRight") { event.preventDefault(); seek(now() + 1); }
  else if (key === "[") jumpMarker(-1);
  else if (key === "]") jumpMarker(1);
  else if (key === "f" || key === "F") { failureT = Math.round(now() * 100) / 100; showMoment(); }
  else if (key === "y" || key === "Y") { /** @type {HTMLInputElement} */ (form.querySelector("input[name=good_demo][value=true]")).checked = true; }
  else if (key === "n" || key === "N") { /** @type {HTMLInputElement} */ (form.querySelector("input[name=good_demo][value=false]")).checked = true; }
  else if (key === "s" || key === "S") { event.preventDefault(); save(); }
  else if (/^[0-9]$/.test(key)) {
    const radios = /** @type {NodeListOf<HTMLInputElement>} */ (form.querySelectorAll("input[name=failure_mode]"));
    const radio = radios[Number(key)];
    if (radio) { radio.checked = true; updateOther(); }
  }
});

load(true).catch((error) => { $("upload-state").textContent = `Could not load the episode: ${error.message}`; });
Object.assign(window, { foreman: { seek, get videos() { return videos; }, get data() { return data; } } });
