// @ts-check
// One WebRTC peer connection from this page to one robot's agent (docs/protocol.md, signaling
// through /ws/fleet/). Media flows peer to peer. The agent answers the i-th m=video section with
// its i-th camera, so we offer one transceiver per camera: recvonly for the camera shown,
// inactive for the others (the agent encodes only what someone watches).
// The offer says how wide and how often this page shows the video (`video`), so a fleet tile
// costs the robot a tile-sized encode, not a full one.
// Reconnects by itself; counts decoded frames and measures glass-to-glass latency from the
// agent's frame_clock messages (RTP timestamp → capture time) and requestVideoFrameCallback.
// When the robot cannot serve this page (every viewer slot taken, offline) it says so in
// `state`/`detail` and tries again slowly instead of reconnecting in a loop.

// With an SFU (snapshot.sfu), video comes through Janus instead (lib/janus.js): the page asks the
// server for a grant (`sfu_view`, renewed every 20 s) and the robot publishes each feed once; the
// teleop data channel stays peer to peer. Janus unreachable: peer to peer for a minute, then again.

import { JanusError, JanusSubscriber } from "./janus.js";

/** @typedef {import("./socket.js").FleetSocket} FleetSocket */

const RECONNECT_MS = [500, 1000, 2000, 4000, 8000];
const ANSWER_TIMEOUT_MS = 10000; // offer sent, no answer: the agent is gone or swamped
const CONNECT_TIMEOUT_MS = 20000; // answered, ICE not connected (the agent frees the slot after 20 s too)
const DISCONNECTED_GRACE_MS = 4000; // "disconnected" often recovers by itself (a busy machine missing consent checks)
const REFUSED_RETRY_MS = 15000; // full or offline: ask again this often
const FULL_VIEW = { width: 1920, fps: 30 }; // the robot caps it at its camera's own size and rate
const THUMBNAIL_VIEW = { width: 320, fps: 10 };
const SFU_RENEW_MS = 20000; // the robot unpublishes a feed nobody renewed for 60 s
const SFU_DOWN_MS = 60000; // Janus unreachable: peer to peer this long before trying it again

export class RobotVideo extends EventTarget {
  /**
   * @param {FleetSocket} socket
   * @param {string} robot
   * @param {HTMLVideoElement} video
   * @param {{camera?: string, teleop?: boolean, video?: {width: number, fps: number}, allCameras?: boolean}} [options]
   */
  constructor(socket, robot, video, options = {}) {
    super();
    this.socket = socket;
    this.robot = robot;
    this.video = video;
    this.camera = options.camera || "";
    this.wantsTeleop = Boolean(options.teleop);
    /** @type {{width: number, fps: number}|null} what this page shows; null: full size at the robot's rate */
    this.wants = options.video || null;
    /** every camera at once, one track each (peer to peer): `streams` by camera; switching sends a layout, no renegotiation */
    this.allCameras = Boolean(options.allCameras);
    /** @type {Map<string, MediaStream>} */
    this.streams = new Map();
    /** @type {Map<string, string>} transceiver mid by camera */
    this.mids = new Map();
    /** @type {RTCDataChannel|null} the channel layouts go on (teleop, or view for a page that may not drive) */
    this.channel = null;
    /** why the robot refused this page ("full") or why there is no video, for the page to say */
    this.detail = "";
    this.turnError = "";
    this.disconnectTimer = 0;
    /** "p2p" | "sfu": how the video of the current connection travels */
    this.via = "p2p";
    /** @type {JanusSubscriber|null} */
    this.sfu = null;
    this.sfuRun = 0;
    this.sfuRenewTimer = 0;
    this.sfuDownUntil = 0;
    /** said beside the picture while the SFU is down and video goes peer to peer */
    this.sfuNote = "";
    /** @type {RTCPeerConnection|null} */
    this.pc = null;
    /** @type {RTCDataChannel|null} */
    this.teleop = null;
    this.peer = "";
    /** "idle" | "connecting" | "live" | "reconnecting" | "full" | "offline" | "error" | "stopped" */
    this.state = "idle";
    this.frames = 0;
    this.attempt = 0;
    this.reconnectTimer = 0;
    this.connectTimer = 0;
    /** @type {Map<string, {rtp: number, captureMs: number}>} latest frame clock by transceiver mid */
    this.clocks = new Map();
    this.mid = "";
    /** @type {number[]} recent glass-to-glass samples (ms) */
    this.g2g = [];
    /** @type {number[]} recent data-channel round trips (ms) */
    this.rtt = [];
    this.lastFrameAt = 0;
    this.pingTimer = 0;
    this.onSignal = (/** @type {Event} */ event) => this.handleSignal(/** @type {CustomEvent} */ (event).detail);
    this.socket.addEventListener("signal", this.onSignal);
    // Offline is waited out slowly, but a robot (or the server connection) coming back is not.
    this.onRobotBack = () => {
      const robot = this.socket.robots.get(this.robot);
      if (this.state === "offline" && robot && robot.online && this.socket.state === "open") {
        clearTimeout(this.reconnectTimer);
        this.attempt = 0;
        this.start();
      }
    };
    this.socket.addEventListener("robot", this.onRobotBack);
    this.socket.addEventListener("state", this.onRobotBack);
    this.socket.addEventListener("snapshot", this.onRobotBack);
    this.watchFrames();
  }

  /** @param {string} state */
  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: state }));
  }

  start() {
    if (this.state === "stopped") return;
    this.close(false);
    const robot = this.socket.robots.get(this.robot);
    if (!robot || !robot.online || this.socket.state !== "open") {
      this.refused("offline", robot && !robot.online ? `${this.robot} is offline` : "not connected to the server");
      return;
    }
    const cameras = robot.cameras;
    if (!cameras.length && !this.wantsTeleop) {
      this.refused("error", `${this.robot} declares no cameras`);
      return;
    }
    if (!cameras.includes(this.camera)) this.camera = cameras[0];
    this.setState(this.attempt ? "reconnecting" : "connecting");
    this.via = this.socket.sfu && performance.now() > this.sfuDownUntil ? "sfu" : "p2p";
    if (this.via === "sfu") {
      this.startSfu();
      if (!this.wantsTeleop) return; // teleop keeps its peer-to-peer data channel
    }
    this.peer = `p-${Math.random().toString(36).slice(2, 10)}`;
    const pc = new RTCPeerConnection({ iceServers: this.socket.iceServers, iceTransportPolicy: this.socket.iceTransportPolicy });
    this.pc = pc;
    const shown = cameras.indexOf(this.camera);
    const all = this.allCameras && this.via === "p2p";
    if (this.via === "p2p") cameras.forEach((_, index) => pc.addTransceiver("video", { direction: all || index === shown ? "recvonly" : "inactive" }));
    this.streams.clear();
    this.mids.clear();
    if (this.wantsTeleop) {
      const channel = pc.createDataChannel("teleop", { ordered: false, maxRetransmits: 0 });
      channel.addEventListener("message", (event) => this.onTeleopMessage(event));
      channel.addEventListener("open", () => { this.dispatchEvent(new CustomEvent("teleop-open")); this.startPings(); this.sendLayout(); });
      this.teleop = channel;
      this.channel = channel;
    } else {
      // A data channel in the offer also makes the agent open its `clock` channel (latency figures).
      const channel = pc.createDataChannel("view", { ordered: false, maxRetransmits: 0 });
      channel.addEventListener("open", () => this.sendLayout());
      this.channel = channel;
    }
    pc.addEventListener("datachannel", (event) => {
      if (event.channel.label === "clock") event.channel.addEventListener("message", (e) => this.onClock(e));
    });
    pc.addEventListener("track", (event) => {
      const index = pc.getTransceivers().indexOf(event.transceiver);
      const camera = cameras[index];
      if (event.transceiver.mid === null || camera === undefined) return;
      // One stream per track: the agent puts every track in one stream, and a <video> of a stream
      // with three video tracks plays the first of them.
      const stream = new MediaStream([event.track]);
      this.streams.set(camera, stream);
      this.mids.set(camera, event.transceiver.mid);
      if (camera === this.camera) {
        this.mid = event.transceiver.mid;
        this.video.srcObject = stream;
        this.video.play().catch(() => { /* autoplay of muted video is allowed; a refusal shows as no frames */ });
      }
      this.dispatchEvent(new CustomEvent("streams"));
    });
    pc.addEventListener("icecandidateerror", (event) => {
      const error = /** @type {RTCPeerConnectionIceErrorEvent} */ (event);
      if (pc !== this.pc || !error.url || !/^turns?:/.test(error.url)) return;
      // 401: coturn refused the credentials (wrong, or expired: they are short-lived); 701: unreachable.
      const why = error.errorCode === 401 ? "refused the credentials (wrong or expired)" : error.errorCode === 701 ? "is unreachable"
        : `failed (${error.errorCode} ${error.errorText})`;
      const detail = `${this.robot}: the video relay (TURN ${error.url}) ${why}`;
      console.warn(detail);
      if (this.socket.iceTransportPolicy === "relay") this.refused("error", detail); // relay only: nothing else can connect
      else this.turnError = detail;
    });
    pc.addEventListener("icecandidate", (event) => {
      if (event.candidate) {
        this.socket.send({ type: "signal", robot: this.robot, peer: this.peer, kind: "ice",
          candidate: { candidate: event.candidate.candidate, sdpMid: event.candidate.sdpMid, sdpMLineIndex: event.candidate.sdpMLineIndex } });
      }
    });
    pc.addEventListener("connectionstatechange", () => {
      if (pc !== this.pc) return;
      clearTimeout(this.disconnectTimer);
      if (pc.connectionState === "connected") {
        clearTimeout(this.connectTimer);
        if (this.via === "sfu") return; // the data channel only: the video's own connection says live
        this.attempt = 0;
        this.detail = "";
        this.setState("live");
      } else if (pc.connectionState === "disconnected") {
        this.disconnectTimer = window.setTimeout(() => { if (pc === this.pc && pc.connectionState !== "connected") this.scheduleReconnect(); },
          DISCONNECTED_GRACE_MS);
      } else if (pc.connectionState === "failed" || pc.connectionState === "closed") {
        this.scheduleReconnect();
      }
    });
    this.armConnectTimer(pc, ANSWER_TIMEOUT_MS);
    this.offer(pc);
  }

  /** Video through the SFU: a grant from the server, then Janus (lib/janus.js). */
  async startSfu() {
    const run = ++this.sfuRun;
    const rtc = { iceServers: this.socket.iceServers, iceTransportPolicy: this.socket.iceTransportPolicy };
    try {
      const ask = () => this.socket.request({ type: "sfu_view", robot: this.robot, camera: this.camera, ...(this.wants ? { video: this.wants } : {}) }, 10000);
      const { grant, feed } = /** @type {any} */ (await ask());
      if (run !== this.sfuRun) return;
      const subscriber = new JanusSubscriber(grant, feed, rtc);
      this.sfu = subscriber;
      subscriber.addEventListener("track", (event) => {
        this.video.srcObject = /** @type {CustomEvent} */ (event).detail;
        this.video.play().catch(() => { /* muted autoplay is allowed; a refusal shows as no frames */ });
      });
      subscriber.addEventListener("connectionstate", (event) => {
        if (run !== this.sfuRun) return;
        const state = /** @type {CustomEvent} */ (event).detail;
        clearTimeout(this.disconnectTimer);
        if (state === "connected") { clearTimeout(this.connectTimer); this.attempt = 0; this.detail = ""; this.sfuNote = ""; this.setState("live"); }
        else if (state === "failed" || state === "closed") this.scheduleReconnect();
        else if (state === "disconnected") this.disconnectTimer = window.setTimeout(() => { if (run === this.sfuRun) this.scheduleReconnect(); }, DISCONNECTED_GRACE_MS);
      });
      subscriber.addEventListener("closed", () => { if (run === this.sfuRun) this.sfuUnreachable("the video server closed the connection"); });
      subscriber.addEventListener("hangup", () => { if (run === this.sfuRun) this.scheduleReconnect(); });
      this.sfuRenewTimer = window.setInterval(() => {
        ask().then((data) => subscriber.renew(/** @type {any} */ (data).grant)).catch(() => { /* the next renewal tries again */ });
      }, SFU_RENEW_MS);
      this.armConnectTimer(null, CONNECT_TIMEOUT_MS);
      await subscriber.start();
    } catch (error) {
      if (run !== this.sfuRun) return;
      const code = /** @type {any} */ (error).code;
      if (code === "robot_offline") this.refused("offline", `${this.robot} is offline`);
      else if (code === "sfu_unavailable" || (error instanceof JanusError && error.code === 0)) this.sfuUnreachable(String(/** @type {any} */ (error).message || error));
      else { console.warn(`video ${this.robot}: through the video server`, error); this.scheduleReconnect(); }
    }
  }

  /** Janus cannot be reached: peer to peer for a while (the page says so), then the SFU again. @param {string} why */
  sfuUnreachable(why) {
    console.warn(`video ${this.robot}: ${why}; peer to peer for now`);
    this.sfuDownUntil = performance.now() + SFU_DOWN_MS;
    this.close(false);
    this.sfuNote = "video server unreachable: peer to peer";
    this.start();
  }

  /** @param {RTCPeerConnection|null} pc null: the SFU connection @param {number} ms */
  armConnectTimer(pc, ms) {
    clearTimeout(this.connectTimer);
    const run = this.sfuRun;
    this.connectTimer = window.setTimeout(() => {
      if ((pc === null ? run === this.sfuRun : pc === this.pc) && this.state !== "live") this.scheduleReconnect();
    }, ms);
  }

  /** @param {RTCPeerConnection} pc */
  async offer(pc) {
    try {
      await pc.setLocalDescription(await pc.createOffer());
      if (pc !== this.pc || !pc.localDescription) return;
      /** @type {Record<string, any>} */
      const message = { type: "signal", robot: this.robot, peer: this.peer, kind: "offer", sdp: pc.localDescription.sdp };
      if (this.wants) message.video = this.wants;
      await this.socket.request(message).catch((error) => { if (error.code !== "timeout") throw error; });
    } catch (error) {
      if (pc !== this.pc) return;
      const code = /** @type {any} */ (error).code;
      if (code === "robot_offline") this.refused("offline", `${this.robot} is offline`);
      else { console.warn(`video ${this.robot}: offer failed`, error); this.scheduleReconnect(); }
    }
  }

  /** The robot cannot serve this page now: say why, ask again later. @param {string} state @param {string} detail */
  refused(state, detail) {
    this.close(false);
    this.detail = detail;
    this.setState(state);
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = window.setTimeout(() => this.start(), REFUSED_RETRY_MS);
  }

  /** @param {any} message */
  async handleSignal(message) {
    if (message.robot !== this.robot || message.peer !== this.peer || !this.pc) return;
    const pc = this.pc;
    if (message.kind === "answer") {
      this.armConnectTimer(pc, CONNECT_TIMEOUT_MS);
      try { await pc.setRemoteDescription({ type: "answer", sdp: message.sdp }); } catch { this.scheduleReconnect(); }
    } else if (message.kind === "ice" && message.candidate) {
      try { await pc.addIceCandidate(message.candidate); } catch { /* a bad candidate is skipped */ }
    } else if (message.kind === "bye") {
      if (message.reason === "full") this.refused("full", `${this.robot}'s video is full: ${message.detail || "no viewer slot free"}`);
      else this.scheduleReconnect();
    }
  }

  scheduleReconnect() {
    if (this.state === "stopped") return;
    if (this.turnError && this.state !== "live") { this.refused("error", this.turnError); return; } // never connected: say why
    this.close(false);
    this.detail = "";
    this.setState("reconnecting");
    clearTimeout(this.reconnectTimer);
    const delay = RECONNECT_MS[Math.min(this.attempt, RECONNECT_MS.length - 1)];
    this.attempt += 1;
    this.reconnectTimer = window.setTimeout(() => this.start(), delay);
  }

  /** Show another camera (renegotiates: a new offer replaces this page's connection). @param {string} camera */
  setCamera(camera) {
    if (camera === this.camera) return;
    this.camera = camera;
    const stream = this.streams.get(camera);
    if (this.allCameras && this.via === "p2p" && this.state === "live" && stream) {
      // Every camera is already here: swap the pictures and tell the robot which one is big.
      this.video.srcObject = stream;
      this.video.play().catch(() => {});
      this.mid = this.mids.get(camera) || "";
      this.g2g.length = 0;
      this.sendLayout();
      this.dispatchEvent(new CustomEvent("streams"));
      return;
    }
    this.attempt = 0;
    this.start();
  }

  /** Every camera at once: the big one at full size, the others as thumbnails (sent on the data channel). */
  sendLayout() {
    if (!this.allCameras || !this.channel || this.channel.readyState !== "open") return;
    const robot = this.socket.robots.get(this.robot);
    /** @type {Record<string, {width: number, fps: number}>} */
    const cameras = {};
    for (const camera of robot?.cameras || []) cameras[camera] = camera === this.camera ? FULL_VIEW : THUMBNAIL_VIEW;
    this.channel.send(JSON.stringify({ type: "video_layout", cameras }));
  }

  /** @param {boolean} sayBye */
  close(sayBye) {
    this.turnError = "";
    this.sfuRun += 1;
    clearInterval(this.sfuRenewTimer);
    this.sfu?.close();
    this.sfu = null;
    clearTimeout(this.connectTimer);
    clearTimeout(this.disconnectTimer);
    clearInterval(this.pingTimer);
    if (this.pc) {
      if (sayBye || this.pc.connectionState !== "closed") this.socket.send({ type: "signal", robot: this.robot, peer: this.peer, kind: "bye" });
      this.pc.close();
      this.pc = null;
    }
    this.teleop = null;
    this.channel = null;
    this.clocks.clear();
  }

  stop() {
    clearTimeout(this.reconnectTimer);
    this.close(true);
    this.setState("stopped");
    this.socket.removeEventListener("signal", this.onSignal);
    this.socket.removeEventListener("robot", this.onRobotBack);
    this.socket.removeEventListener("state", this.onRobotBack);
    this.socket.removeEventListener("snapshot", this.onRobotBack);
    this.video.srcObject = null;
  }

  /** @param {MessageEvent} event */
  onClock(event) {
    try {
      const message = JSON.parse(event.data);
      if (message.type === "frame_clock" && message.mid != null) this.clocks.set(String(message.mid), { rtp: message.rtp_ts, captureMs: message.capture_ms });
    } catch { /* ignore */ }
  }

  watchFrames() {
    const video = /** @type {any} */ (this.video);
    if (typeof video.requestVideoFrameCallback !== "function") return;
    /** @param {number} _now @param {any} meta */
    const onFrame = (_now, meta) => {
      if (this.state === "stopped") return;
      this.frames += 1;
      this.lastFrameAt = performance.now();
      const clock = this.clocks.get(this.mid);
      if (clock && typeof meta.rtpTimestamp === "number") {
        // 90 kHz video clock; the difference wraps at 2^32.
        let ticks = (meta.rtpTimestamp - clock.rtp) >>> 0;
        if (ticks > 0x7fffffff) ticks -= 0x100000000;
        const captureMs = clock.captureMs + ticks / 90;
        const shownMs = performance.timeOrigin + (meta.expectedDisplayTime ?? meta.presentationTime);
        const g2g = shownMs - captureMs;
        if (g2g > -50 && g2g < 10000) {
          this.g2g.push(g2g);
          if (this.g2g.length > 60) this.g2g.shift();
        }
      }
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }

  /** Median of recent glass-to-glass samples, or NaN. */
  latencyMs() { return median(this.g2g); }

  /** Median data-channel round trip, or NaN. */
  commandRttMs() { return median(this.rtt); }

  /** True when frames arrived in the last second. */
  receiving() { return performance.now() - this.lastFrameAt < 1000; }

  startPings() {
    clearInterval(this.pingTimer);
    this.pingTimer = window.setInterval(() => {
      if (this.teleop && this.teleop.readyState === "open") this.teleop.send(JSON.stringify({ type: "ping", sent_ms: performance.now() }));
    }, 1000);
  }

  /** @param {MessageEvent} event */
  onTeleopMessage(event) {
    try {
      const message = JSON.parse(event.data);
      if (message.type === "pong") {
        this.rtt.push(performance.now() - message.sent_ms);
        if (this.rtt.length > 20) this.rtt.shift();
      }
    } catch { /* ignore */ }
  }

  /** Send a teleop command over the data channel; false when it is not open. @param {object} command */
  sendTeleop(command) {
    if (!this.teleop || this.teleop.readyState !== "open") return false;
    this.teleop.send(JSON.stringify(command));
    return true;
  }
}

/** @param {number[]} values */
export function median(values) {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}
