// @ts-check
// Subscribing to one robot feed on the Janus SFU (VideoRoom), with the grant the server gave this
// page (`sfu_view`, docs/protocol.md): every request carries the grant's signed token; the page
// joins as a participant that publishes nothing (Janus checks the room token), subscribes with that
// participant's private id, answers Janus's offer and trickles its candidates. Keepalive every 25 s.

const KEEPALIVE_MS = 25000;
const REQUEST_TIMEOUT_MS = 8000;
const FEED_WAIT_MS = 15000; // the robot publishes when asked: its feed may be a moment away
const NO_SUCH_FEED = 428;

export class JanusError extends Error {
  /** @param {string} message @param {number} code 0: unreachable or closed */
  constructor(message, code) { super(message); this.code = code; }
}

/** @typedef {{url: string, token: string, room: string, room_token: string, expires_at: number}} SfuGrant */

export class JanusSubscriber extends EventTarget {
  /** @param {SfuGrant} grant @param {string} feed @param {RTCConfiguration} rtc */
  constructor(grant, feed, rtc) {
    super();
    this.grant = grant;
    this.feed = feed;
    this.rtc = rtc;
    /** @type {WebSocket|null} */
    this.ws = null;
    /** @type {RTCPeerConnection|null} */
    this.pc = null;
    this.session = 0;
    this.handle = 0;
    this.nextId = 1;
    /** @type {Map<string, {resolve: (m: any) => void, reject: (e: Error) => void, timer: number}>} */
    this.pending = new Map();
    this.keepaliveTimer = 0;
    this.closed = false;
  }

  /** Connect, subscribe and answer; resolves once the answer is sent (media follows). */
  async start() {
    await this.open();
    this.session = (await this.request({ janus: "create" })).data.id;
    this.keepaliveTimer = window.setInterval(() => this.send({ janus: "keepalive" }), KEEPALIVE_MS);
    const participant = (await this.request({ janus: "attach", plugin: "janus.plugin.videoroom" })).data.id;
    const joined = await this.message(participant, { request: "join", ptype: "publisher", room: this.grant.room, token: this.grant.room_token });
    const privateId = joined.plugindata.data.private_id;
    this.handle = (await this.request({ janus: "attach", plugin: "janus.plugin.videoroom" })).data.id;
    const deadline = performance.now() + FEED_WAIT_MS;
    /** @type {any} */
    let reply;
    for (;;) {
      try {
        reply = await this.message(this.handle, { request: "join", ptype: "subscriber", room: this.grant.room, private_id: privateId, streams: [{ feed: this.feed }] });
        break;
      } catch (error) {
        if (/** @type {JanusError} */ (error).code !== NO_SUCH_FEED || performance.now() > deadline || this.closed) throw error;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
    if (!reply.jsep) throw new JanusError("the video server sent no offer", 0);
    const pc = new RTCPeerConnection(this.rtc);
    this.pc = pc;
    pc.addEventListener("track", (event) => this.dispatchEvent(new CustomEvent("track", { detail: event.streams[0] || new MediaStream([event.track]) })));
    pc.addEventListener("connectionstatechange", () => this.dispatchEvent(new CustomEvent("connectionstate", { detail: pc.connectionState })));
    pc.addEventListener("icecandidateerror", (event) => this.dispatchEvent(new CustomEvent("icecandidateerror", { detail: event })));
    pc.addEventListener("icecandidate", (event) => {
      const candidate = event.candidate ? { candidate: event.candidate.candidate, sdpMid: event.candidate.sdpMid, sdpMLineIndex: event.candidate.sdpMLineIndex }
        : { completed: true };
      this.send({ janus: "trickle", handle_id: this.handle, candidate });
    });
    await pc.setRemoteDescription(reply.jsep);
    await pc.setLocalDescription(await pc.createAnswer());
    await this.message(this.handle, { request: "start" }, { type: "answer", sdp: /** @type {RTCSessionDescription} */ (pc.localDescription).sdp });
  }

  /** A renewed grant: later requests (keepalives) carry its token. @param {SfuGrant} grant */
  renew(grant) { this.grant = grant; }

  close() {
    this.closed = true;
    clearInterval(this.keepaliveTimer);
    if (this.session) this.send({ janus: "destroy" });
    this.pc?.close();
    this.pc = null;
    setTimeout(() => this.ws?.close(), 200);
    for (const { reject, timer } of this.pending.values()) { clearTimeout(timer); reject(new JanusError("closed", 0)); }
    this.pending.clear();
  }

  /** @returns {Promise<void>} */
  open() {
    return new Promise((resolve, reject) => {
      let ws;
      try { ws = new WebSocket(this.grant.url, "janus-protocol"); } catch (error) { reject(new JanusError(`video server unreachable: ${error}`, 0)); return; }
      this.ws = ws;
      const timer = window.setTimeout(() => { ws.close(); reject(new JanusError("video server unreachable (no answer)", 0)); }, REQUEST_TIMEOUT_MS);
      ws.addEventListener("open", () => { clearTimeout(timer); resolve(); });
      ws.addEventListener("error", () => { clearTimeout(timer); reject(new JanusError("video server unreachable", 0)); });
      ws.addEventListener("close", () => {
        if (!this.closed) this.dispatchEvent(new CustomEvent("closed"));
        for (const { reject: fail, timer: t } of this.pending.values()) { clearTimeout(t); fail(new JanusError("the video server closed the connection", 0)); }
        this.pending.clear();
      });
      ws.addEventListener("message", (event) => this.onMessage(event));
    });
  }

  /** @param {MessageEvent} event */
  onMessage(event) {
    /** @type {any} */
    let message;
    try { message = JSON.parse(event.data); } catch { return; }
    if (message.janus === "ack") return;
    const waiting = this.pending.get(message.transaction);
    if (waiting) {
      this.pending.delete(message.transaction);
      clearTimeout(waiting.timer);
      const plugin = message.plugindata?.data;
      if (message.janus === "error") waiting.reject(new JanusError(`video server: ${message.error?.reason}`, message.error?.code || 0));
      else if (plugin && plugin.error_code) waiting.reject(new JanusError(`video room: ${plugin.error}`, plugin.error_code));
      else waiting.resolve(message);
    } else if (message.janus === "hangup" || message.janus === "detached") {
      this.dispatchEvent(new CustomEvent("hangup", { detail: message.reason || message.janus }));
    }
  }

  /** @param {Record<string, any>} body @returns {Promise<any>} */
  request(body) {
    return new Promise((resolve, reject) => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) { reject(new JanusError("the video server connection is closed", 0)); return; }
      const transaction = `t${this.nextId++}`;
      const timer = window.setTimeout(() => { this.pending.delete(transaction); reject(new JanusError(`the video server did not answer ${body.janus}`, 0)); },
        REQUEST_TIMEOUT_MS);
      this.pending.set(transaction, { resolve, reject, timer });
      /** @type {Record<string, any>} */
      const message = { ...body, transaction, token: this.grant.token };
      if (this.session && body.janus !== "create") message.session_id = this.session;
      this.ws.send(JSON.stringify(message));
    });
  }

  /** Janus answers keepalives and trickles with an `ack` only: nothing to wait for. @param {Record<string, any>} body */
  send(body) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(JSON.stringify({ ...body, transaction: `t${this.nextId++}`, token: this.grant.token, session_id: this.session }));
  }

  /** @param {number} handle @param {Record<string, any>} body @param {RTCSessionDescriptionInit} [jsep] */
  message(handle, body, jsep) {
    return this.request(jsep ? { janus: "message", handle_id: handle, body, jsep } : { janus: "message", handle_id: handle, body });
  }
}
