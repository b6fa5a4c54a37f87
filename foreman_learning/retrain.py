"""python -m foreman_learning.retrain --policy PATH --episodes 40 --seed 2000 --out PATH

One round of learning from interventions on the simulated station (Sirius-style), in process — the
quick way to try a change to the round before `manage.py learning_round` runs it through the server:

1. Deploy: run the policy on fresh seeds (2000 and up: neither training nor evaluation seeds) with
   the agent's chunk semantics, supervised by the same rules as the fleet's scripted supervisor
   (foreman_sim/supervisor.py): when the agent would ask for a person — confidence below the
   intervention level, a station fault, or 95% of the takt used — it takes over the arm the robot
   is stuck on until that arm has installed its next nut; and it watches every pick, taking over an
   arm about to grip its nut off centre until the nut is held. One arm at a time; the other stands
   still. Then the robot goes on.
2. Label every step by who acted: `robot`, `pre_intervention` (the last PRE_INTERVENTION_STEPS robot
   steps before each takeover, as Sirius marks them) and `human`.
3. Fine-tune on the cycles a person touched or that failed, as the fleet uploads them: human steps
   carry HUMAN_WEIGHT_SHARE of the round's weight, pre-intervention steps are down-weighted, robot
   steps of a successful cycle keep weight 1; the base's own demonstrations are rehearsed.
4. Evaluate before and after on held-out seeds — and a control, the same fine-tune on the rehearsal
   alone (`--control`) — and write the new checkpoint.

`run_supervised(...)`, `round_samples(...)`, `rehearsal_demonstrations(...)` and `retrain(...)` are the
pieces the server-side retraining task reuses; the per-step records match what episodes upload
(state, action, action_mode).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foreman_learning.evaluate import INTERVENTION_CONFIDENCE, TAKT_WARNING_FRACTION, observe_batch, run_episodes, summarize
from foreman_learning.policies.visuomotor import (
    VisuomotorPolicy,
    arm_actions_to_action,
    arm_inputs,
    load_visuomotor,
    save_checkpoint,
)
from foreman_learning.train import DEFAULT_NOISE, Samples, collect_demonstrations, fit, samples_from_steps
from foreman_learning.weights import share_human_weight, step_weights
from foreman_protocol.episodes import ACTION_MODES, HUMAN_ACTION_MODES, PRE_INTERVENTION_STEPS, ActionMode
from foreman_sim.expert import PICK_CLOSE_M, Expert
from foreman_sim.render import policy_image
from foreman_sim.station import ARMS, TAKT_S, NutStation
from foreman_sim.supervisor import CAREFUL_PICK_M, choose_arm, pick_going_wrong, takeover_done

REHEARSAL_FALLBACK_EPISODES = 34  # the shipped policy's whole set


@dataclass
class SupervisedEpisode:
    seed: int
    success: bool
    failure_mode: str | None
    intervened_at: int | None
    trigger: str | None
    action_modes: list[str] = field(default_factory=list)  # per step
    actions: list[np.ndarray] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)  # per kept step (every `every`)
    states: list[np.ndarray] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)


def run_supervised(policy: VisuomotorPolicy, seeds: list[int], *, refill: int = 10, every: int = 2,
                   batch: int = 40, watch_picks: bool = True) -> list[SupervisedEpisode]:
    """The policy runs each seed; the scripted supervisor takes one arm over at a time, by the same
    rules as in the fleet (foreman_sim/supervisor.py), without the server in between."""
    episodes: list[SupervisedEpisode] = []
    for start in range(0, len(seeds), batch):
        episodes += _supervised_batch(policy, seeds[start: start + batch], refill, every, watch_picks)
    return episodes


@dataclass
class _Takeover:
    arm: str
    goal_installed: int
    grasp: bool  # a pick taken over: done once the nut is held
    started_t: float

    def finished(self, station: NutStation) -> bool:
        return takeover_done(station, self.arm, goal_installed=self.goal_installed, grasp=self.grasp,
                             started_t=self.started_t)


def _supervised_batch(policy: VisuomotorPolicy, seeds: list[int], refill: int, every: int,
                      watch_picks: bool) -> list[SupervisedEpisode]:
    stations = [NutStation(seed) for seed in seeds]
    records = [SupervisedEpisode(seed, False, None, None, None) for seed in seeds]
    queues: list[list[np.ndarray]] = [[] for _ in seeds]
    takeovers: list[_Takeover | None] = [None] * len(seeds)
    asking = [False] * len(seeds)  # the robot asked for a person: the supervisor takes over next step
    takt_warned = [False] * len(seeds)
    while True:
        live = [i for i, s in enumerate(stations) if not s.outcome.done]
        if not live:
            break
        need = [i for i in live if takeovers[i] is None and len(queues[i]) < refill]
        if need:
            states, images = observe_batch([stations[i] for i in need])
            chunks, confidence = policy.infer_batch(states, images)
            for j, i in enumerate(need):
                queues[i] = list(arm_actions_to_action(chunks[j]))
                if confidence[j] < INTERVENTION_CONFIDENCE:
                    asking[i] = True
                    records[i].trigger = records[i].trigger or "policy_uncertainty"
        for i in live:
            station, record = stations[i], records[i]
            if takeovers[i] is None:
                pick = pick_going_wrong(station) if watch_picks and not asking[i] else None
                if asking[i] or pick is not None:
                    takeovers[i] = _take_over(station, record, pick)
                    asking[i], queues[i] = False, []
            if station.steps % every == 0:
                arm_images, arm_states = arm_inputs(station.state_vector(), {f"wrist_{s}": policy_image(station, s) for s in ARMS})
                record.images.append(arm_images)
                record.states.append(arm_states)
                record.kept.append(station.steps)
            takeover = takeovers[i]
            if takeover is not None:
                action, mode = _teleop_action(station, takeover), "human"
            else:
                action, mode = queues[i].pop(0), "robot"
            record.actions.append(np.asarray(action, dtype=np.float64))
            record.action_modes.append(mode)
            station.step(action)
            if station.outcome.done:
                continue
            if takeover is not None:
                if takeover.finished(station):  # hand back: the policy starts a fresh chunk
                    takeovers[i], queues[i] = None, []
            elif station.fault:
                asking[i] = True
                record.trigger = record.trigger or "fault"
            elif station.t >= TAKT_WARNING_FRACTION * TAKT_S and not takt_warned[i]:
                asking[i] = takt_warned[i] = True
                record.trigger = record.trigger or "takt_overrun"
    for record, station in zip(records, stations, strict=True):
        record.success, record.failure_mode = bool(station.outcome.success), station.outcome.failure_mode
    return records


def _take_over(station: NutStation, record: SupervisedEpisode, pick: str | None) -> _Takeover | None:
    """Claim the arm a pick is going wrong on, else the one the robot is stuck on; mark the robot's
    steps just before as pre-intervention (Sirius)."""
    arm = pick or choose_arm(station)
    if arm is None:
        return None
    if record.intervened_at is None:
        record.intervened_at = station.steps
        record.trigger = record.trigger or ("pick_watch" if pick else None)
    # As the agent's recorder marks them: the robot's own driving just before, never across an
    # earlier takeover.
    for t in range(station.steps - 1, max(-1, station.steps - 1 - PRE_INTERVENTION_STEPS), -1):
        if record.action_modes[t] != "robot":
            break
        record.action_modes[t] = "pre_intervention"
    return _Takeover(arm, min(station.arms[arm].installed + 1, 2), pick is not None, station.t)


def _teleop_action(station: NutStation, takeover: _Takeover) -> np.ndarray:
    """The driven arm moves as the supervisor commands; the other stands still and keeps its grip
    (as SimRobot.teleop_action applies a teleop command)."""
    action = np.zeros(len(ARMS) * 5)
    for index, side in enumerate(ARMS):
        action[5 * index + 3] = station.arms[side].grip_command
    index = ARMS.index(takeover.arm)
    close_m = CAREFUL_PICK_M if takeover.grasp else PICK_CLOSE_M
    action[5 * index: 5 * index + 5] = Expert.teleop_command(station, takeover.arm, close_m).as_action()
    return action


def arm_weights(modes: np.ndarray, actions: np.ndarray, success: bool = True) -> np.ndarray:
    """(T, 2) weights by who acted (foreman_learning.weights.step_weights) — except an arm the person
    was not driving (teleop moves one arm at a time; the other stands still, its grip held), which
    teaches nothing about that arm: 0. Shared steps count as the person's.

    The driven arm is the one the person last commanded: its steps where it stands still and only
    closes its gripper on a nut, or waits for the gripper, belong to the demonstration (they are the
    most important steps of a pick), while the other arm's standing still does not."""
    weights = step_weights(modes, success)[:, None].repeat(2, axis=1)
    moved = np.stack([np.abs(actions[:, 5 * i: 5 * i + 5][:, [0, 1, 2, 4]]).max(axis=1) > 0.0 for i in range(2)], axis=1)
    grip = actions[:, [3, 8]]
    gripped = np.vstack([np.zeros((1, 2), dtype=bool), np.diff(grip, axis=0) != 0.0])
    commanded = moved | gripped  # (T, 2)
    for start, end in _runs(modes == "human"):
        driven = np.zeros(2, dtype=bool)  # nobody yet: the person's first moments on a new lease
        for t in range(start, end):
            if commanded[t].any():
                driven = commanded[t].copy()
            weights[t, ~driven] = 0.0
    return weights.astype(np.float32)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True in `mask`."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def round_samples(episodes: list[SupervisedEpisode], horizon: int) -> tuple[Samples, dict[ActionMode, int]]:
    """Weighted per-arm samples from supervised episodes: human share fixed, pre-intervention down."""
    parts, human_masks = [], []
    counts = dict.fromkeys(ACTION_MODES, 0)
    for episode in episodes:
        modes = np.asarray(episode.action_modes)
        if not episode.success and episode.intervened_at is None:
            continue  # a failure nobody caught teaches nothing good
        actions = np.asarray(episode.actions)
        kept = [t for t in episode.kept if t < len(modes)]
        weights = arm_weights(modes, actions, episode.success)
        parts.append(samples_from_steps(episode.images[: len(kept)], episode.states[: len(kept)], actions,
                                        kept, horizon, weights))
        human_masks.append(np.repeat(np.isin(modes[kept], HUMAN_ACTION_MODES), 2))  # two per-arm samples per step
        for mode in counts:
            counts[mode] += int(np.sum(modes[kept] == mode))
    if not parts:
        raise ValueError("no episode to learn from: every one was an uncaught failure")
    samples = Samples.concat(parts)
    # Interventions carry a fixed share of the total weight, however few they are.
    # (When nothing else carries weight — every cycle failed — the person's steps are all there is.)
    share_human_weight(samples.weights, np.concatenate(human_masks))
    return samples, counts


def rehearsal_demonstrations(policy: VisuomotorPolicy, episodes: int | None = None,
                             progress: Callable[[int, int], None] | None = None) -> Samples:
    """Expert demonstrations from the base's own training seeds and noise, as its checkpoint records
    them: by default its whole demonstration set (a fine-tune on fewer often unlearns phases the
    round's episodes never show). A checkpoint without a record rehearses REHEARSAL_FALLBACK_EPISODES."""
    trained = policy.config.trained or {}
    return collect_demonstrations(rehearsal_count(policy, episodes), seed=int(trained.get("seed", 0)),
                                  horizon=policy.config.horizon, noise=float(trained.get("noise", DEFAULT_NOISE)),
                                  progress=progress)


def rehearsal_count(policy: VisuomotorPolicy, episodes: int | None = None) -> int:
    """`episodes`, or by default the base's whole demonstration set."""
    if episodes is not None:
        return episodes
    return int((policy.config.trained or {}).get("episodes", REHEARSAL_FALLBACK_EPISODES))


def retrain(policy: VisuomotorPolicy, samples: Samples, *, epochs: int, seed: int, version: str,
            progress: Callable[[int, int, float], None] | None = None) -> VisuomotorPolicy:
    net = copy.deepcopy(policy.net)
    net.config.version = version
    fit(net, samples, epochs=epochs, seed=seed, lr=3e-4, progress=progress)
    return VisuomotorPolicy(net)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m foreman_learning.retrain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", required=True, help="the deployed checkpoint to improve")
    parser.add_argument("--episodes", type=int, default=40, help="deployed cycles to learn from (default 40)")
    parser.add_argument("--seed", type=int, default=2000, help="first deployment seed (default 2000)")
    parser.add_argument("--epochs", type=int, default=4, help="fine-tuning passes (default 4)")
    parser.add_argument("--rehearsal-episodes", type=int, default=None,
                        help="expert demonstrations mixed in (default: the base's whole training set; 0: none)")
    parser.add_argument("--no-pick-watch", action="store_true", help="take over only when the robot asks for a person")
    parser.add_argument("--control", action="store_true", help="also fine-tune on the rehearsal alone and evaluate it")
    parser.add_argument("--fine-tune-seed", type=int, default=0)
    parser.add_argument("--eval-episodes", type=int, default=200, help="held-out evaluation episodes (default 200)")
    parser.add_argument("--eval-seed", type=int, default=1000)
    parser.add_argument("--version", default=None, help="name of the new policy version (default: <old>-r1)")
    parser.add_argument("--out", required=True, help="checkpoint to write")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    deploy_seeds = range(args.seed, args.seed + args.episodes)
    eval_seeds = list(range(args.eval_seed, args.eval_seed + args.eval_episodes))
    if min(args.eval_seed, args.seed) < 1000 or set(deploy_seeds) & set(eval_seeds):
        parser.error("deployment and evaluation seeds must be 1000 or more (below are training seeds) and apart")
    torch.set_num_threads(max(1, args.threads))
    started = time.monotonic()
    policy = load_visuomotor(args.policy)
    version = args.version or f"{policy.version}-r1"
    before = summarize(run_episodes(policy, eval_seeds))
    print(f"before: {before['success_rate']:.1%} on {len(eval_seeds)} held-out seeds", flush=True)
    deployed = run_supervised(policy, list(deploy_seeds), watch_picks=not args.no_pick_watch)
    uploaded = [e for e in deployed if e.intervened_at is not None or not e.success]  # what the fleet uploads
    interventions = sum(1 for e in deployed if e.intervened_at is not None)
    if not uploaded:
        print("every cycle succeeded without help: nothing to learn from (deploy more cycles)", file=sys.stderr)
        return 1
    samples, counts = round_samples(uploaded, policy.config.horizon)
    print(f"deployed {len(deployed)} cycles: {sum(e.success for e in deployed)} succeeded, {interventions} with a "
          f"takeover; steps {counts}", flush=True)
    rehearsal = rehearsal_demonstrations(policy, args.rehearsal_episodes) if args.rehearsal_episodes != 0 else None
    mix = Samples.concat([samples, rehearsal]) if rehearsal is not None else samples

    def trained(epoch: int, total: int, loss: float) -> None:
        print(f"  epoch {epoch}/{total} loss {loss:.4f}", file=sys.stderr, flush=True)

    new = retrain(policy, mix, epochs=args.epochs, seed=args.fine_tune_seed, version=version, progress=trained)
    after = summarize(run_episodes(new, eval_seeds))
    path = save_checkpoint(new.net, Path(args.out))
    report: dict[str, Any] = {
        "policy_before": policy.version, "policy_after": version, "checkpoint": str(path),
        "success_before": before["success_rate"], "success_after": after["success_rate"],
        "cycle_s_before": before["mean_cycle_s"], "cycle_s_after": after["mean_cycle_s"],
        "failure_modes_before": before["failure_modes"], "failure_modes_after": after["failure_modes"],
        "episodes_deployed": len(deployed), "fleet_success": sum(e.success for e in deployed) / len(deployed),
        "episodes_used": len(uploaded), "interventions_used": interventions, "steps": counts,
        "rehearsal_episodes": rehearsal_count(policy, args.rehearsal_episodes) if rehearsal is not None else 0,
        "eval_episodes": len(eval_seeds),
    }
    if args.control and rehearsal is not None:
        twin = retrain(policy, rehearsal, epochs=args.epochs, seed=args.fine_tune_seed, version=f"{version}-control")
        control = summarize(run_episodes(twin, eval_seeds))
        report.update(success_control=control["success_rate"], failure_modes_control=control["failure_modes"])
    report["wall_s"] = round(time.monotonic() - started, 1)
    print(f"after: {after['success_rate']:.1%}; wrote {path}")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
