// @ts-check
// Policies page: versions with their held-out evaluation, rollouts (canary → promote → rollback) and
// retraining rounds (start one on a finished export, watch its progress, compare before/after).
// Polls /api/learning/policies and /api/learning/retraining every 2 s: rollouts change at cycle
// boundaries and rounds report progress by stage, seconds apart.

const config = JSON.parse(/** @type {HTMLElement} */ (document.getElementById("page-config")).textContent || "{}");
const status = /** @type {HTMLElement} */ (document.getElementById("status"));
const versionsBody = /** @type {HTMLElement} */ (document.querySelector("#versions tbody"));
const rolloutsBody = /** @type {HTMLElement} */ (document.querySelector("#rollouts tbody"));
const roundsBody = /** @type {HTMLElement} */ (document.querySelector("#rounds tbody"));
const retrainForm = /** @type {HTMLFormElement | null} */ (document.getElementById("retrain-form"));
const csrf = /** @type {HTMLInputElement | null} */ (document.querySelector("input[name=csrfmiddlewaretoken]"))?.value || "";

const MODE_COLOURS = ["#ef4444", "#f5b83d", "#a78bfa", "#4f9cf9", "#2fbf71", "#f472b6", "#94a3b8", "#22d3ee"];

/** @param {string} tag @param {Record<string, string>} [attrs] @param {(Node|string)[]} [children] */
function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  node.append(...children);
  return node;
}

/** @param {string} url @param {object} [body] */
async function post(url, body) {
  const response = await fetch(url, {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
    body: JSON.stringify(body || {}),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.detail || `HTTP ${response.status}`);
  return data;
}

/** @param {number | undefined} rate */
function successCell(rate) {
  if (rate === undefined || rate === null) return el("td", {}, ["not evaluated"]);
  const pct = (rate * 100).toFixed(1);
  const bar = el("span", { class: "bar", role: "img", "aria-label": `${pct}% success` }, [el("span", { style: `width:${pct}%` })]);
  return el("td", {}, [bar, `${pct}%`]);
}

/** @param {Record<string, number> | undefined} modes */
function modesCell(modes) {
  const entries = Object.entries(modes || {}).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
  const total = entries.reduce((sum, [, n]) => sum + n, 0);
  if (!total) return el("td", {}, ["—"]);
  const bar = el("div", { class: "modes", role: "img", "aria-label": entries.map(([m, n]) => `${m} ${n}`).join(", ") },
    entries.map(([mode, n], i) => el("span", { title: `${mode}: ${n}`, style: `width:${(100 * n) / total}%;background:${MODE_COLOURS[i % MODE_COLOURS.length]}` })));
  const legend = entries.slice(0, 3).map(([m, n]) => `${m.replaceAll("_", " ")} ${n}`).join(" · ");
  return el("td", {}, [bar, el("small", {}, [legend])]);
}

/** @param {any[]} robots @param {any} policy */
function canaryCell(robots, policy) {
  if (!policy.rollable) return el("td", {}, ["no checkpoint"]);
  const select = /** @type {HTMLSelectElement} */ (el("select", { "aria-label": `canary robot for ${policy.name}` },
    robots.filter((r) => r.online && r.policy_version !== policy.name).map((r) => el("option", { value: r.name }, [r.name]))));
  if (!select.options.length) return el("td", {}, ["no online robot to try it on"]);
  const button = el("button", { type: "button" }, ["Start canary"]);
  button.addEventListener("click", async () => {
    try {
      await post(`/api/learning/policies/${encodeURIComponent(policy.name)}/rollout`, { robot: select.value });
      status.textContent = `${policy.name} sent to ${select.value} (canary)`;
      refresh();
    } catch (error) { status.textContent = `Refused: ${/** @type {Error} */ (error).message}`; }
  });
  return el("td", {}, [select, " ", button]);
}

/** @param {any} rollout */
function actionsCell(rollout) {
  const cell = el("td");
  /** @param {string} label @param {string} verb @param {string} [klass] */
  const action = (label, verb, klass = "") => {
    const button = el("button", { type: "button", class: klass }, [label]);
    button.addEventListener("click", async () => {
      if (verb === "rollback" && !confirm(`Roll every robot on ${rollout.policy} back to its previous policy?`)) return;
      try {
        await post(`/api/learning/rollouts/${rollout.id}/${verb}`);
        status.textContent = `${rollout.policy}: ${verb === "promote" ? "promoted to the station" : "rolled back"}`;
        refresh();
      } catch (error) { status.textContent = `Refused: ${/** @type {Error} */ (error).message}`; }
    });
    cell.append(button, " ");
  };
  if (rollout.stage === "canary") action("Promote to station", "promote");
  if (rollout.stage !== "rolled_back") action("Roll back", "rollback", "danger");
  return cell;
}

/** @param {number | undefined} rate @param {string} [klass] */
function rateBar(rate, klass = "") {
  if (rate === undefined || rate === null) return el("span", {}, ["—"]);
  const pct = (rate * 100).toFixed(1);
  return el("span", {}, [el("span", { class: `bar ${klass}`, role: "img", "aria-label": `${pct}% success` },
    [el("span", { style: `width:${pct}%` })]), `${pct}%`]);
}

/** @param {any} round */
function roundRow(round) {
  const report = round.report || {};
  const names = `${round.base_policy} → ${round.result || round.name || "(new version)"}`;
  const stateCell = el("td", { class: `round-state ${round.state}` });
  if (round.state === "queued" || round.state === "running") {
    const pct = Math.round((round.progress || 0) * 100);
    stateCell.append(el("progress", { max: "100", value: String(pct), "aria-label": `${pct}% done` }), `${pct}% ${round.stage || round.state}`);
  } else if (round.state === "failed") {
    stateCell.append(`failed: ${round.error || "no reason given"}`);
  } else {
    stateCell.append(round.state);
  }
  const success = el("td", {}, [rateBar(report.success_before, "before"), " → ", rateBar(report.success_after)]);
  if (report.success_control !== undefined) {  // the same fine-tune on the base's own demonstrations alone
    success.append(el("div", { class: "muted control" }, ["control, without the episodes: ", rateBar(report.success_control, "before")]));
  }
  const cycle = report.cycle_s_before ? `${report.cycle_s_before.toFixed(1)} → ${(report.cycle_s_after || 0).toFixed(1)} s` : "—";
  return el("tr", { "data-round": round.id }, [
    el("th", { scope: "row" }, [names]), el("td", {}, [String(round.episodes)]), stateCell, success, el("td", {}, [cycle]),
    el("td", {}, [round.created_at ? new Date(round.created_at).toLocaleString() : "—"]),
  ]);
}

/** @param {any[]} exports */
function fillExports(exports) {
  if (!retrainForm) return;
  const select = /** @type {HTMLSelectElement} */ (retrainForm.elements.namedItem("export"));
  const chosen = select.value;
  select.replaceChildren(...exports.map((e) => el("option", { value: e.id },
    [`${new Date(e.created_at).toLocaleString()} · ${e.episodes} episodes · by ${e.created_by}`])));
  if (chosen && exports.some((e) => e.id === chosen)) select.value = chosen;
  const button = /** @type {HTMLButtonElement} */ (retrainForm.querySelector("button"));
  button.disabled = !exports.length;
  button.title = exports.length ? "" : "No finished LeRobot export yet: export labeled episodes from the labeling queue first";
}

retrainForm?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(/** @type {HTMLFormElement} */ (retrainForm));
  try {
    const round = await post("/api/learning/retraining", {
      export: form.get("export"),
      options: { epochs: Number(form.get("epochs")), eval_episodes: Number(form.get("eval_episodes")),
        control: form.get("control") ? 1 : 0 },
    });
    status.textContent = `Retraining ${round.base_policy} on ${round.episodes} episodes: queued`;
    refresh();
  } catch (error) { status.textContent = `Refused: ${/** @type {Error} */ (error).message}`; }
});

async function refreshRounds() {
  const data = await fetch("/api/learning/retraining", { credentials: "same-origin" }).then((r) => r.json());
  roundsBody.replaceChildren(...data.rounds.map(roundRow));
  if (!data.rounds.length) roundsBody.replaceChildren(el("tr", {}, [el("td", { colspan: "6" }, ["No retraining rounds yet."])]));
  fillExports(data.exports);
}

async function refresh() {
  try {
    const [data, robots] = await Promise.all([
      fetch("/api/learning/policies", { credentials: "same-origin" }).then((r) => r.json()),
      fetch("/api/robots", { credentials: "same-origin" }).then((r) => r.json()),
    ]);
    versionsBody.replaceChildren(...data.policies.map((/** @type {any} */ p) => {
      const evaluation = p.evaluation || {};
      const cycle = evaluation.mean_cycle_s ? `${evaluation.mean_cycle_s.toFixed(1)} s` : "—";
      const cells = [
        el("th", { scope: "row" }, [p.name]), el("td", {}, [p.parent || "—"]), successCell(evaluation.success_rate),
        el("td", {}, [cycle]), modesCell(evaluation.failure_modes), el("td", {}, [p.robots.join(", ") || "—"]),
      ];
      if (config.canRollout) cells.push(canaryCell(robots, p));
      return el("tr", { "data-policy": p.name }, cells);
    }));
    rolloutsBody.replaceChildren(...data.rollouts.map((/** @type {any} */ r) => {
      const latest = new Map();
      for (const t of r.targets) latest.set(t.robot, t);
      const chips = [...latest.values()].map((t) => el("span", { class: `chip ${t.state}`, title: t.error || t.state },
        [`${t.robot}: ${t.purpose === "rollback" ? "↩ " : ""}${t.policy_version} (${t.state})`]));
      const cells = [
        el("th", { scope: "row" }, [r.policy]), el("td", {}, [el("span", { class: `stage ${r.stage}` }, [r.stage.replace("_", " ")])]),
        el("td", {}, chips), el("td", {}, [r.created_by]), el("td", {}, [new Date(r.created_at).toLocaleString()]),
      ];
      if (config.canRollout) cells.push(actionsCell(r));
      return el("tr", { "data-rollout": r.id }, cells);
    }));
    if (!data.rollouts.length) rolloutsBody.replaceChildren(el("tr", {}, [el("td", { colspan: "6" }, ["No rollouts yet."])]));
    await refreshRounds();
  } catch (error) {
    status.textContent = `Cannot reach the server: ${/** @type {Error} */ (error).message}`;
  }
}

refresh();
setInterval(refresh, 2000);
