"""python -m robot_agent.train_aloha — a policy for ALOHA's insertion from its scripted expert's
demonstrations, trained with foreman_learning.train's own `fit` (the nut station's policy's code).

1. Demonstrations: the expert (which plans on the simulator's ground truth) drives the real MuJoCo
   robot on seeds below 100, with the agent's chunk execution; only its successful cycles are kept.
   Every `--every` control periods a sample: what the policy will see (both wrist cameras and the
   overview, joint positions) and the expert's next `horizon` actions as labels.
2. `fit` on the per-arm samples; the confidence scale calibrated on them; the checkpoint written
   (foreman-visuomotor format, embodiment aloha: `--policy PATH` runs it).
3. `--evaluate N`: the trained policy on held-out seeds 100.. (no ground truth), the agent's loop,
   as `python -m robot_agent.evaluate` measures it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from foreman_learning.policies.aloha_visuomotor import action_to_arm_targets, aloha_config, arm_inputs
from foreman_learning.policies.visuomotor import VisuomotorNet, save_checkpoint
from foreman_learning.train import Samples, calibrate_confidence, fit
from robot_agent.drivers.aloha import AlohaRobot
from robot_agent.evaluate import run_episode, summarize
from robot_agent.robot import clamp_action

ENV_ID = "gym_aloha/AlohaInsertion-v0"
EVALUATION_SEED = 100  # demonstrations stay below it
REFILL = 10  # a new expert chunk when fewer remain: the agent's chunk execution
MAX_STEPS = 600  # 12 s at 50 Hz: the demo station's takt


def demonstration(robot: AlohaRobot, seed: int, horizon: int, every: int, pixels: int, noise: float) -> Samples | None:
    """One expert cycle on `seed` as per-arm samples, or None when the expert failed it. `noise`
    (rad): a slowly drifting offset on the joint targets executed (DART), so the data also shows
    how the expert recovers; the labels are its clean commands."""
    rng = np.random.default_rng(20_000_003 + seed)
    drift = np.zeros(14, dtype=np.float32)
    joints = np.array([i % 7 < 6 for i in range(14)])
    expert = robot.expert_policy()
    robot.observe_ground_truth(True)
    status = robot.reset(seed)
    chunk: list[np.ndarray] = []
    images, states, observed, actions = [], [], [], []
    step = 0
    while not status.done and step < MAX_STEPS:
        observation = robot.observation()
        if len(chunk) < REFILL:
            chunk = list(np.asarray(expert.infer(observation).actions))
        if step % every == 0:
            arm_images, arm_states = arm_inputs(observation["state"], observation["images"], pixels)
            images.append(arm_images)
            states.append(arm_states)
            observed.append((step, np.asarray(observation["state"], dtype=np.float32)))
        action, _ = clamp_action(chunk.pop(0), robot.action_features)
        actions.append(action.astype(np.float32))
        drift = 0.9 * drift + rng.normal(0.0, noise, 14).astype(np.float32) * joints
        status = robot.step(clamp_action(action + drift, robot.action_features)[0])
        step += 1
    robot.observe_ground_truth(False)
    if not status.success:
        return None
    executed = np.asarray(actions)
    padded = np.concatenate([executed, np.repeat(executed[-1:], horizon, axis=0)])
    chunks = np.stack([action_to_arm_targets(padded[t: t + horizon], state) for t, state in observed])  # (K, 2, H, 7)
    return Samples(images=(np.concatenate(images) * 255).round().astype(np.uint8), states=np.concatenate(states),
                   chunks=chunks.reshape(-1, horizon, chunks.shape[-1]).astype(np.float32),
                   weights=np.ones(len(observed) * 2, dtype=np.float32))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m robot_agent.train_aloha", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=40, help="expert cycles tried (seeds 0..; failed ones are dropped)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--every", type=int, default=4, help="a sample every N control periods (each draws 3 camera frames)")
    parser.add_argument("--horizon", type=int, default=20, help="actions predicted per chunk")
    parser.add_argument("--pixels", type=int, default=32, help="camera images as P x P grey (32, 40 or 60)")
    parser.add_argument("--noise", type=float, default=0.0, help="DART noise on executed joint targets, rad (e.g. 0.005)")
    parser.add_argument("--out", default="var/aloha-bc.pt")
    parser.add_argument("--version", default="aloha-bc-v1")
    parser.add_argument("--evaluate", type=int, default=0, help="then run it on this many held-out seeds (100..)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if args.episodes > EVALUATION_SEED:
        parser.error(f"demonstration seeds must stay below {EVALUATION_SEED} (evaluation uses {EVALUATION_SEED} and up)")
    torch.set_num_threads(max(1, args.threads))
    started = time.monotonic()
    robot = AlohaRobot(ENV_ID)
    try:
        parts = []
        for seed in range(args.episodes):
            samples = demonstration(robot, seed, args.horizon, args.every, args.pixels, args.noise)
            if samples is not None:
                parts.append(samples)
            print(f"  demonstration {seed + 1}/{args.episodes}: {'kept' if samples is not None else 'expert failed'}", file=sys.stderr, flush=True)
        if not parts:
            print("train_aloha: the expert succeeded on none of the demonstration seeds", file=sys.stderr)
            return 1
        data = Samples.concat(parts)
        collect_s = time.monotonic() - started
        print(f"collected {len(data)} per-arm samples from {len(parts)} successful demonstrations in {collect_s:.0f} s", flush=True)
        config = aloha_config(args.version, args.horizon, args.pixels)
        torch.manual_seed(0)
        net = VisuomotorNet(config)
        losses = fit(net, data, epochs=args.epochs, seed=0,
                     progress=lambda epoch, epochs, loss: print(f"  epoch {epoch}/{epochs} loss {loss:.4f}", file=sys.stderr, flush=True))
        scale = calibrate_confidence(net, data)
        config.trained = {"env": ENV_ID, "demonstrations": len(parts), "tried": args.episodes, "epochs": args.epochs,
                          "pixels": args.pixels, "noise": args.noise, "every": args.every,
                          "samples": len(data), "final_loss": round(losses[-1], 5), "wall_s": round(time.monotonic() - started, 1)}
        path = save_checkpoint(net, Path(args.out))
        report: dict[str, object] = {"checkpoint": str(path), "losses": [round(x, 5) for x in losses], "confidence_scale": round(scale, 5),
                                     **config.trained}
        if args.evaluate:
            from foreman_learning.policies.visuomotor import load_checkpoint_policy

            policy = load_checkpoint_policy(path)
            evaluated = time.monotonic()
            episodes = [run_episode(robot, policy, EVALUATION_SEED + i, max_seconds=MAX_STEPS / robot.control_hz) for i in range(args.evaluate)]
            report["evaluation"] = {**summarize(episodes), "seeds": f"{EVALUATION_SEED}-{EVALUATION_SEED + args.evaluate - 1}",
                                    "progress_mean": round(float(np.mean([e.progress for e in episodes])), 3),
                                    "wall_s": round(time.monotonic() - evaluated, 1)}
        print(json.dumps(report))
    finally:
        robot.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
