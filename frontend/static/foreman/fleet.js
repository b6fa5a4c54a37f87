// @ts-check
// Minimal fleet list over /ws/fleet/ (the full dashboard replaces this page).
const list = /** @type {HTMLUListElement} */ (document.getElementById("robots"));
const status = /** @type {HTMLElement} */ (document.getElementById("connection"));
const scheme = location.protocol === "https:" ? "wss" : "ws";
const socket = new WebSocket(`${scheme}://${location.host}/ws/fleet/`);
socket.addEventListener("open", () => { status.textContent = "Connected"; });
socket.addEventListener("close", () => { status.textContent = "Disconnected"; });
socket.addEventListener("message", (event) => {
  const message = JSON.parse(event.data);
  if (message.type === "snapshot") {
    list.replaceChildren(...message.robots.map((/** @type {any} */ r) => {
      const item = document.createElement("li");
      item.textContent = `${r.name} — ${r.online ? r.mode : "offline"}${r.estopped ? " (e-stopped)" : ""}`;
      return item;
    }));
  }
});
