"""python -m foreman_learning.evaluate --episodes 200 --seed 1000 [--policy PATH|expert] [--json]

Runs the policy on held-out seeds of the simulated station, as fast as the CPU allows (no real-time
loop) with the agent's chunk semantics: a new chunk is asked for when fewer than `refill` actions
of the current one remain. Episodes run in lockstep so the network sees them as one batch.
The last line printed is one JSON object: success_rate, mean_cycle_s, failure_modes,
interventions_raised, episodes (+ details).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from foreman_learning.policies.base import Policy
from foreman_learning.policies.expert import ExpertPolicy
from foreman_learning.policies.factory import load_policy
from foreman_learning.policies.visuomotor import DEFAULT_WEIGHTS, VisuomotorPolicy, arm_actions_to_action, arm_inputs
from foreman_sim.render import observe, policy_image
from foreman_sim.station import ARMS, TAKT_S, NutStation

WARNING_CONFIDENCE = 0.7
INTERVENTION_CONFIDENCE = 0.5
TAKT_WARNING_FRACTION = 0.95  # the agent asks for a person when a cycle has used this much of its takt


@dataclass
class EpisodeResult:
    seed: int
    success: bool
    failure_mode: str | None
    cycle_s: float
    min_confidence: float
    intervention_step: int | None  # first step where the agent would have asked for a person
    fault: bool


def observe_batch(stations: list[NutStation]) -> tuple[np.ndarray, np.ndarray]:
    """Per-arm network inputs of many stations: states (2N, 10), images (2N, 1, P, P)."""
    states, images = [], []
    for station in stations:
        arm_images, arm_states = arm_inputs(station.state_vector(), {f"wrist_{s}": policy_image(station, s) for s in ARMS})
        states.append(arm_states)
        images.append(arm_images)
    return np.concatenate(states), np.concatenate(images)


def run_episodes(policy: Policy, seeds: list[int], *, refill: int = 10, batch: int = 50,
                 progress: Any = None) -> list[EpisodeResult]:
    """Roll `policy` out on each seed until the cycle ends (success, failure or takt overrun)."""
    results: list[EpisodeResult] = []
    for start in range(0, len(seeds), batch):
        results += _run_batch(policy, seeds[start: start + batch], refill)
        if progress is not None:
            progress(len(results), len(seeds))
    return results


def _run_batch(policy: Policy, seeds: list[int], refill: int) -> list[EpisodeResult]:
    stations = [NutStation(seed) for seed in seeds]
    queues: list[list[np.ndarray]] = [[] for _ in seeds]
    min_confidence = [1.0] * len(seeds)
    intervention_step: list[int | None] = [None] * len(seeds)
    fault = [False] * len(seeds)
    while True:
        live = [i for i, station in enumerate(stations) if not station.outcome.done]
        if not live:
            break
        need = [i for i in live if len(queues[i]) < refill]
        if need:
            if isinstance(policy, ExpertPolicy):
                for i in need:
                    queues[i] = list(policy.plan(stations[i], 20))
            elif isinstance(policy, VisuomotorPolicy):
                states, images = observe_batch([stations[i] for i in need])
                chunks, confidence = policy.infer_batch(states, images)
                for j, i in enumerate(need):
                    queues[i] = list(arm_actions_to_action(chunks[j]))
                    min_confidence[i] = min(min_confidence[i], float(confidence[j]))
                    if confidence[j] < INTERVENTION_CONFIDENCE and intervention_step[i] is None:
                        intervention_step[i] = stations[i].steps
            else:  # any other policy: one observation at a time
                for i in need:
                    output = policy.infer(observe(stations[i], ground_truth=policy.needs_ground_truth))
                    queues[i] = list(np.asarray(output.actions))
                    if output.confidence is not None:
                        min_confidence[i] = min(min_confidence[i], output.confidence)
        for i in live:
            stations[i].step(queues[i].pop(0))
            if stations[i].fault:
                fault[i] = True
            if intervention_step[i] is None and not stations[i].outcome.done and stations[i].t >= TAKT_WARNING_FRACTION * TAKT_S:
                intervention_step[i] = stations[i].steps  # the takt trigger
    return [
        EpisodeResult(seed, bool(s.outcome.success), s.outcome.failure_mode, round(s.t, 3), round(min_confidence[i], 4),
                      intervention_step[i], fault[i])
        for i, (seed, s) in enumerate(zip(seeds, stations, strict=True))
    ]


def summarize(results: list[EpisodeResult]) -> dict[str, Any]:
    successes = [r for r in results if r.success]
    failures = Counter(r.failure_mode for r in results if not r.success)
    raised = [r for r in results if r.intervention_step is not None or r.fault]
    failed = [r for r in results if not r.success]
    return {
        "success_rate": round(len(successes) / len(results), 4) if results else 0.0,
        "mean_cycle_s": round(float(np.mean([r.cycle_s for r in successes])), 2) if successes else None,
        "failure_modes": dict(sorted(failures.items())),
        "interventions_raised": len(raised),
        "episodes": len(results),
        # How well the intervention trigger anticipates failures.
        "failures_preceded_by_intervention": sum(1 for r in failed if r.intervention_step is not None or r.fault),
        "successes_with_intervention": sum(1 for r in successes if r.intervention_step is not None or r.fault),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m foreman_learning.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=200, help="how many held-out episodes (default 200)")
    parser.add_argument("--seed", type=int, default=1000, help="first seed (episodes use seed, seed+1, ...)")
    parser.add_argument("--policy", default=None, help="checkpoint PATH or 'expert' (default: the shipped weights)")
    parser.add_argument("--json", action="store_true", help="(the JSON line is always printed last)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error("--episodes must be at least 1")

    torch.set_num_threads(max(1, args.threads))
    spec = args.policy or str(DEFAULT_WEIGHTS)
    try:
        policy = load_policy(spec)
    except (OSError, ValueError) as error:
        print(f"error: cannot load policy {spec}: {error}", file=sys.stderr)
        return 2
    started = time.monotonic()

    def progress(done: int, total: int) -> None:
        print(f"  {done}/{total} episodes", file=sys.stderr, flush=True)

    results = run_episodes(policy, list(range(args.seed, args.seed + args.episodes)), progress=progress)
    summary = summarize(results)
    summary["policy"] = policy.version
    summary["seed"] = args.seed
    summary["wall_s"] = round(time.monotonic() - started, 1)
    print(f"policy {summary['policy']}: {summary['success_rate']:.1%} success over {summary['episodes']} episodes "
          f"(seeds {args.seed}…{args.seed + args.episodes - 1}), mean cycle {summary['mean_cycle_s']} s")
    for mode, count in summary["failure_modes"].items():
        print(f"  {mode:16s} {count}")
    print(f"  interventions raised in {summary['interventions_raised']} episodes; "
          f"{summary['failures_preceded_by_intervention']} of {sum(summary['failure_modes'].values())} failures were preceded by one")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
