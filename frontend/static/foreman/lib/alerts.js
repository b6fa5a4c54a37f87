// @ts-check
// The alert queue: open interventions sorted by urgency, acknowledged with one key or click,
// announced by sound, a flashing title and (optionally) a browser notification.

import { ago, el } from "./socket.js";

/** @typedef {import("./socket.js").FleetSocket} FleetSocket */
/** @typedef {import("./socket.js").Intervention} Intervention */

const SEVERITY_RANK = /** @type {Record<string, number>} */ ({ high: 0, medium: 1, low: 2 });
const TRIGGER_LABEL = /** @type {Record<string, string>} */ ({
  policy_uncertainty: "policy unsure", fault: "station fault", takt_overrun: "takt overrun", supervisor: "supervisor", estop: "e-stop",
});

/**
 * Seconds of takt left for a robot's current cycle (Infinity when unknown).
 * @param {FleetSocket} socket @param {string} robot
 */
export function taktLeftS(socket, robot) {
  const t = socket.robots.get(robot)?.telemetry;
  if (!t || typeof t.takt_s !== "number") return Infinity;
  return t.takt_s - t.takt_elapsed_s;
}

/**
 * Most urgent first: not yet acknowledged, then severity, then takt time left, then waiting longest.
 * @param {FleetSocket} socket @returns {Intervention[]}
 */
export function alertsByUrgency(socket) {
  return [...socket.interventions.values()].sort((a, b) =>
    Number(a.state !== "raised") - Number(b.state !== "raised")
    || (SEVERITY_RANK[a.severity] ?? 3) - (SEVERITY_RANK[b.severity] ?? 3)
    || taktLeftS(socket, a.robot) - taktLeftS(socket, b.robot)
    || Date.parse(a.raised_at) - Date.parse(b.raised_at));
}

/** @param {string} trigger */
export function triggerLabel(trigger) { return TRIGGER_LABEL[trigger] || trigger; }

export class AlertQueue {
  /**
   * @param {FleetSocket} socket
   * @param {{list: HTMLElement, empty: HTMLElement, count: HTMLElement, sound?: HTMLButtonElement|null,
   *   notify?: HTMLButtonElement|null, robot?: string}} parts
   */
  constructor(socket, parts) {
    this.socket = socket;
    this.parts = parts;
    this.soundOn = localStorage.getItem("foreman.sound") !== "off";
    /** @type {AudioContext|null} */
    this.audio = null;
    this.baseTitle = document.title;
    this.flashTimer = 0;
    socket.addEventListener("snapshot", () => this.render());
    socket.addEventListener("intervention", (event) => {
      const { intervention, isNew } = /** @type {CustomEvent} */ (event).detail;
      if (isNew && (!parts.robot || parts.robot === intervention.robot)) this.announce(intervention);
      this.render();
    });
    socket.addEventListener("telemetry", () => this.render());
    socket.addEventListener("robot", () => this.render());
    setInterval(() => this.render(), 1000);  // waiting times tick
    if (parts.sound) {
      const sound = parts.sound;
      const show = () => { sound.textContent = this.soundOn ? "Sound on" : "Sound off"; sound.setAttribute("aria-pressed", String(this.soundOn)); };
      show();
      sound.addEventListener("click", () => { this.soundOn = !this.soundOn; localStorage.setItem("foreman.sound", this.soundOn ? "on" : "off"); this.unlockAudio(); show(); });
    }
    if (parts.notify) {
      const notify = parts.notify;
      if (!("Notification" in window)) notify.hidden = true;
      else {
        const show = () => { notify.textContent = Notification.permission === "granted" ? "Notifications on" : "Notify"; };
        show();
        notify.addEventListener("click", () => { Notification.requestPermission().then(show); });
      }
    }
    // Browsers start audio only after a gesture: the first key or click on the page unlocks it.
    const unlock = () => this.unlockAudio();
    document.addEventListener("pointerdown", unlock, { once: true });
    document.addEventListener("keydown", unlock, { once: true });
  }

  unlockAudio() {
    if (!this.audio) {
      try { this.audio = new AudioContext(); } catch { this.audio = null; }
    }
    this.audio?.resume().catch(() => {});
  }

  /** @returns {Intervention[]} */
  items() {
    const all = alertsByUrgency(this.socket);
    return this.parts.robot ? all.filter((i) => i.robot === this.parts.robot) : all;
  }

  /** The first alert nobody has acknowledged yet. */
  topUnacknowledged() { return this.items().find((i) => i.state === "raised"); }

  /** @param {Intervention} item */
  async acknowledge(item) {
    try {
      await this.socket.request({ type: "ack", intervention: item.id });
    } catch (error) {
      this.parts.list.dataset.error = /** @type {Error} */ (error).message;
    }
  }

  /** @param {Intervention} item */
  announce(item) {
    if (this.soundOn && this.audio && this.audio.state === "running") {
      const ctx = this.audio;
      // Two short tones, higher for high severity.
      const pitch = item.severity === "high" ? 880 : 660;
      [0, 0.22].forEach((offset) => {
        const osc = ctx.createOscillator();
        const gain = ctx.createGain();
        osc.frequency.value = pitch;
        gain.gain.setValueAtTime(0.0001, ctx.currentTime + offset);
        gain.gain.exponentialRampToValueAtTime(0.25, ctx.currentTime + offset + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, ctx.currentTime + offset + 0.18);
        osc.connect(gain).connect(ctx.destination);
        osc.start(ctx.currentTime + offset);
        osc.stop(ctx.currentTime + offset + 0.2);
      });
    }
    if ("Notification" in window && Notification.permission === "granted" && document.hidden) {
      const note = new Notification(`${item.robot} needs help`, { body: `${triggerLabel(item.trigger)}: ${item.detail}`, tag: item.id });
      note.addEventListener("click", () => { window.focus(); location.assign(`/robots/${encodeURIComponent(item.robot)}/`); });
    }
    this.parts.list.classList.remove("flash");
    void this.parts.list.offsetWidth;  // restart the animation
    this.parts.list.classList.add("flash");
  }

  render() {
    const items = this.items();
    const now = Date.now();
    const raised = items.filter((i) => i.state === "raised").length;
    this.parts.count.textContent = String(items.length);
    this.parts.count.dataset.level = raised ? "raised" : items.length ? "open" : "none";
    this.parts.empty.hidden = items.length > 0;
    document.title = raised ? `(${raised}) ${this.baseTitle}` : this.baseTitle;
    this.parts.list.replaceChildren(...items.map((item) => {
      const left = taktLeftS(this.socket, item.robot);
      const buttons = [];
      if (item.state === "raised" && this.socket.can("ack")) {
        const ack = /** @type {HTMLButtonElement} */ (el("button", { type: "button", class: "ack" }, ["Acknowledge"]));
        ack.addEventListener("click", () => this.acknowledge(item));
        buttons.push(ack);
      }
      if (!this.parts.robot) buttons.push(el("a", { href: `/robots/${encodeURIComponent(item.robot)}/`, class: "button" }, ["Open"]));
      const who = item.state === "acknowledged" ? ` · seen by ${item.acknowledged_by}` : item.state === "claimed" ? ` · ${item.claimed_by} is on it` : "";
      return el("li", { class: `alert ${item.severity} ${item.state}`, "data-intervention": item.id, "data-robot": item.robot }, [
        el("div", { class: "alert-head" }, [
          el("strong", {}, [item.robot]),
          el("span", { class: `sev ${item.severity}` }, [item.severity]),
          el("span", { class: "trigger" }, [triggerLabel(item.trigger)]),
        ]),
        el("div", { class: "alert-detail" }, [item.detail || ""]),
        el("div", { class: "alert-meta" }, [
          `waiting ${ago(now - Date.parse(item.raised_at))}`,
          Number.isFinite(left) ? ` · takt ${left >= 0 ? `${left.toFixed(0)} s left` : `${(-left).toFixed(0)} s over`}` : "",
          `${who}`,
        ]),
        el("div", { class: "alert-actions" }, buttons),
      ]);
    }));
  }
}
