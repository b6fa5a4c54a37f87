// @ts-check
// The dashboard's one connection to /ws/fleet/ (docs/protocol.md): snapshot + deltas kept in a
// store, request/answer by `id`, reconnect with backoff. A robot this page cannot see is never
// reported as fine: while the socket is down, or when a robot's telemetry goes quiet, its status
// says so.

/** Telemetry older than this (ms, by this page's clock) makes an online robot "stale". */
export const STALE_MS = 3000;

/**
 * @typedef {{id: string, holder: string, mode: string, expires_at: string, ttl_s?: number}} Lease
 * @typedef {{name: string, station: string|null, takt_s: number, cameras: string[], online: boolean,
 *   mode: string, estopped: boolean, estopped_by: string|null, policy_version: string, lease: Lease|null, telemetry?: any,
 *   last_seen: string|null}} Robot
 * @typedef {{id: string, robot: string, trigger: string, severity: string, state: string, detail: string,
 *   raised_at: string, acknowledged_at: string|null, acknowledged_by: string|null, claimed_at: string|null,
 *   claimed_by: string|null, resolved_at: string|null, resolved_by: string|null, resolution: string|null,
 *   episode: string|null}} Intervention
 * @typedef {{key: string, label: string, severity: number}} Status
 * @typedef {{robot: string, code?: string, kind?: string, detail: string, at: string, seenAt: number}} RobotEvent
 */

/** How long a robot's last fault stays on its tile (ms): long enough to be seen, not forever. */
export const FAULT_SHOWN_MS = 5 * 60_000;

export class RequestError extends Error {
  /** @param {string} code @param {string} message @param {any} data */
  constructor(code, message, data) {
    super(message);
    this.code = code;
    this.data = data;
  }
}

export class FleetSocket extends EventTarget {
  constructor(url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/fleet/`) {
    super();
    this.url = url;
    /** @type {WebSocket|null} */
    this.ws = null;
    /** "connecting" | "open" | "reconnecting" | "denied" */
    this.state = "connecting";
    /** @type {Map<string, Robot>} */
    this.robots = new Map();
    /** @type {Map<string, number>} performance.now() of each robot's last telemetry */
    this.telemetryAt = new Map();
    /** @type {Map<string, number[]>} recent confidence per robot (for sparklines) */
    this.confidence = new Map();
    /** @type {Map<string, Intervention>} open interventions */
    this.interventions = new Map();
    /** @type {any} */
    this.user = null;
    /** @type {RTCIceServer[]} */
    this.iceServers = [];
    /** @type {RTCIceTransportPolicy} "relay": TURN-relayed candidates only (the server's setting) */
    this.iceTransportPolicy = "all";
    /** live video may go through the SFU (the server has one): ask with sfu_view */
    this.sfu = false;
    this.leaseTtlS = 5;
    /** @type {Map<string, RobotEvent>} the last fault each robot reported (relayed at once) */
    this.faults = new Map();
    /** @type {Map<string, RobotEvent>} the last warning each robot reported */
    this.warnings = new Map();
    this.serverRttMs = NaN;
    this.nextId = 1;
    /** @type {Map<string, {resolve: (v: any) => void, reject: (e: Error) => void, timer: number}>} */
    this.pending = new Map();
    this.backoffMs = 500;
    this.pingTimer = 0;
  }

  connect() {
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.addEventListener("message", (event) => this.onMessage(event));
    ws.addEventListener("close", (event) => this.onClose(event));
    ws.addEventListener("open", () => { this.backoffMs = 500; });
  }

  /** @param {string} state */
  setState(state) {
    this.state = state;
    this.emit("state", state);
  }

  /** @param {string} type @param {any} [detail] */
  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  /** @param {CloseEvent} event */
  onClose(event) {
    clearInterval(this.pingTimer);
    for (const [id, waiter] of this.pending) {
      clearTimeout(waiter.timer);
      waiter.reject(new RequestError("disconnected", "the connection to the server was lost", null));
      this.pending.delete(id);
    }
    if (event.code === 4401) { location.assign(`/accounts/login/?next=${encodeURIComponent(location.pathname)}`); return; }
    if (event.code === 4403) { this.setState("denied"); return; }
    this.setState("reconnecting");
    const delay = this.backoffMs * (0.75 + Math.random() / 2);
    this.backoffMs = Math.min(this.backoffMs * 2, 8000);
    setTimeout(() => this.connect(), delay);
  }

  /** @param {MessageEvent} event */
  onMessage(event) {
    /** @type {any} */
    let message;
    try { message = JSON.parse(event.data); } catch { return; }
    switch (message.type) {
      case "snapshot": {
        this.user = message.user;
        this.iceServers = message.ice_servers || [];
        this.iceTransportPolicy = message.ice_transport_policy === "relay" ? "relay" : "all";
        this.sfu = Boolean(message.sfu);
        this.leaseTtlS = message.lease_ttl_s || 5;
        this.robots = new Map(message.robots.map((/** @type {Robot} */ r) => [r.name, r]));
        const now = performance.now();
        for (const robot of this.robots.values()) {
          // The snapshot's telemetry is only as fresh as its received_at says.
          const age = robot.telemetry?.received_at ? Date.now() - Date.parse(robot.telemetry.received_at) : Infinity;
          if (age < STALE_MS) this.telemetryAt.set(robot.name, now - Math.max(0, age));
          else this.telemetryAt.delete(robot.name);
        }
        this.interventions = new Map(message.interventions.map((/** @type {Intervention} */ i) => [i.id, i]));
        this.setState("open");
        this.startPings();
        this.emit("snapshot", message);
        break;
      }
      case "robot": {
        const previous = this.robots.get(message.robot.name);
        if (message.robot.retired) this.robots.delete(message.robot.name);  // an admin took it out of the fleet
        else this.robots.set(message.robot.name, { ...message.robot, telemetry: previous?.telemetry ?? null });
        this.emit("robot", message.robot.name);
        break;
      }
      case "telemetry_batch": {
        const now = performance.now();
        for (const [name, body] of Object.entries(message.robots)) {
          const robot = this.robots.get(name);
          if (!robot) continue;
          robot.telemetry = body;
          this.telemetryAt.set(name, now);
          const series = this.confidence.get(name) || [];
          series.push(typeof body.confidence === "number" ? body.confidence : NaN);
          if (series.length > 120) series.splice(0, series.length - 120);
          this.confidence.set(name, series);
        }
        this.emit("telemetry", Object.keys(message.robots));
        break;
      }
      case "intervention": {
        const item = message.intervention;
        const isNew = !this.interventions.has(item.id) && item.state === "raised";
        if (item.state === "resolved") this.interventions.delete(item.id);
        else this.interventions.set(item.id, item);
        this.emit("intervention", { intervention: item, isNew });
        break;
      }
      case "result":
      case "error": {
        const waiter = message.ref ? this.pending.get(message.ref) : undefined;
        if (waiter) {
          clearTimeout(waiter.timer);
          this.pending.delete(message.ref);
          if (message.type === "result") waiter.resolve(message.data);
          else waiter.reject(new RequestError(message.code, message.message, message));
        } else if (message.type === "error") {
          this.emit("server-error", message);
        }
        break;
      }
      case "fault":
      case "warning": {
        (message.type === "fault" ? this.faults : this.warnings).set(message.robot, { ...message, seenAt: performance.now() });
        this.emit(message.type, message);
        break;
      }
      case "pong":
        this.serverRttMs = performance.now() - message.sent_ms;
        this.emit("pong", this.serverRttMs);
        break;
      default:
        this.emit(message.type, message);  // signal, teleop_state
    }
  }

  startPings() {
    clearInterval(this.pingTimer);
    const ping = () => this.send({ type: "ping", sent_ms: performance.now() });
    ping();
    this.pingTimer = window.setInterval(ping, 5000);
  }

  /** Fire and forget (teleop fallback, signaling). @param {object} message */
  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  /**
   * Send with an `id` and wait for its `result` (resolves with `data`) or `error` (rejects).
   * @param {Record<string, any>} message @param {number} [timeoutMs]
   * @returns {Promise<any>}
   */
  request(message, timeoutMs = 5000) {
    const id = `q${this.nextId++}`;
    return new Promise((resolve, reject) => {
      if (!this.send({ ...message, id })) {
        reject(new RequestError("disconnected", "not connected to the server", null));
        return;
      }
      const timer = window.setTimeout(() => {
        this.pending.delete(id);
        reject(new RequestError("timeout", "the server did not answer in time", null));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
    });
  }

  /** The robot's last fault if it is recent enough to show. @param {string} name @returns {RobotEvent|undefined} */
  recentFault(name) {
    const fault = this.faults.get(name);
    return fault && performance.now() - fault.seenAt < FAULT_SHOWN_MS ? fault : undefined;
  }

  /** @param {string} capability */
  can(capability) { return Boolean(this.user && this.user.can.includes(capability)); }

  /** Open interventions of one robot, newest first. @param {string} name */
  openInterventions(name) {
    return [...this.interventions.values()].filter((i) => i.robot === name)
      .sort((a, b) => Date.parse(b.raised_at) - Date.parse(a.raised_at));
  }

  /**
   * What a person should believe about a robot right now. Higher severity sorts first.
   * @param {string} name @returns {Status}
   */
  status(name) {
    const robot = this.robots.get(name);
    if (this.state !== "open") return { key: "unknown", label: "no connection to server", severity: 5 };
    if (!robot) return { key: "unknown", label: "unknown robot", severity: 5 };
    if (!robot.online) return { key: "offline", label: "offline", severity: 4 };
    if (robot.estopped || robot.mode === "estopped") return { key: "estopped", label: "e-stopped", severity: 6 };
    const seen = this.telemetryAt.get(name);
    if (seen === undefined || performance.now() - seen > STALE_MS) return { key: "stale", label: "no telemetry", severity: 4 };
    if (robot.lease) return { key: "teleop", label: `${robot.lease.mode === "shared" ? "shared" : "teleop"} by ${robot.lease.holder}`, severity: 2 };
    const open = this.openInterventions(name);
    if (robot.mode === "hold" || open.some((i) => i.state !== "claimed")) return { key: "help", label: "needs help", severity: 7 };
    if (robot.telemetry?.warning) return { key: "warning", label: "warning", severity: 3 };
    if (robot.mode === "paused") return { key: "paused", label: "paused", severity: 1 };
    return { key: "autonomous", label: "autonomous", severity: 0 };
  }
}

/**
 * Small element builder. @param {string} tag @param {Record<string, string>} [attrs]
 * @param {(Node|string)[]} [children] @returns {HTMLElement}
 */
export function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  node.append(...children);
  return node;
}

/** "12 s", "3 min" — how long ago. @param {number} ms */
export function ago(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s} s`;
  const m = Math.round(s / 60);
  return m < 90 ? `${m} min` : `${Math.round(m / 60)} h`;
}

/** Draw a confidence sparkline into a canvas (0..1, warning and intervention levels marked). */
export function sparkline(/** @type {HTMLCanvasElement} */ canvas, /** @type {number[]} */ values) {
  const ctx = canvas.getContext("2d");
  if (!ctx) return;
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  ctx.strokeStyle = "rgba(245,184,61,.5)";
  ctx.setLineDash([3, 3]);
  const level = (/** @type {number} */ v) => height - v * height;
  for (const threshold of [0.7, 0.5]) {  // the agent's default warning and intervention levels
    ctx.beginPath(); ctx.moveTo(0, level(threshold)); ctx.lineTo(width, level(threshold)); ctx.stroke();
  }
  ctx.setLineDash([]);
  ctx.strokeStyle = "#4f9cf9";
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  let drawing = false;
  values.forEach((v, i) => {
    const x = (i / Math.max(1, values.length - 1)) * width;
    if (Number.isNaN(v)) { drawing = false; return; }
    if (drawing) ctx.lineTo(x, level(v)); else ctx.moveTo(x, level(v));
    drawing = true;
  });
  ctx.stroke();
}
