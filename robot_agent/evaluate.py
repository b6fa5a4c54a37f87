"""python -m robot_agent.evaluate --robot gym:gym_aloha/AlohaInsertion-v0 --policy expert --episodes 40 --seed 100

A policy on a simulated robot's held-out seeds, as fast as the CPU allows (no real-time loop), with
the agent's own chunk execution (a new chunk when fewer than `--refill` actions remain) and its
action clamping. A cycle ends when the robot says done or after `--max-seconds` of robot time (a
failure, as the takt trigger would have called a person). The last line printed is one JSON object:
success_rate, mean_cycle_s (of successes), episodes, robot, policy, wall_s and each episode.
(foreman_learning.evaluate is the nut station's batched evaluator; this one drives any driver.)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from foreman_learning.policies.base import Policy, PolicyOutput
from robot_agent.chunking import ChunkExecutor, inline_submit
from robot_agent.robot import Robot, clamp_action, give_ground_truth


@dataclass(frozen=True)
class Episode:
    seed: int
    success: bool
    cycle_s: float
    progress: float  # how far the robot's phases got (1.0: done)
    detail: str


def run_episode(robot: Robot, policy: Policy, seed: int, *, max_seconds: float, refill: int = 10) -> Episode:
    executor = ChunkExecutor(
        lambda observation, prefix: _output(policy.infer(observation)), inline_submit, refill_below=refill,
        supports_prefix=False, action_dim=robot.action_dim or None,
    )
    status = robot.reset(seed)
    steps = 0
    limit = int(max_seconds * robot.control_hz)
    while not status.done and steps < limit:
        action = executor.next_action(robot.observation)
        if action is None:  # the chunk is still being computed (never, with inline inference)
            status = robot.hold()
        else:
            status = robot.step(clamp_action(action, robot.action_features)[0])
        steps += 1
    detail = status.fault_detail if status.done else f"not done after {max_seconds:g} s"
    return Episode(seed=seed, success=bool(status.success), cycle_s=round(steps / robot.control_hz, 3),
                   progress=round(status.progress, 3), detail=detail)


def _output(result: Any) -> PolicyOutput:
    return result if isinstance(result, PolicyOutput) else PolicyOutput(result, None)


def summarize(episodes: list[Episode]) -> dict[str, Any]:
    successes = [episode for episode in episodes if episode.success]
    return {
        "episodes": len(episodes),
        "success_rate": round(len(successes) / len(episodes), 4) if episodes else 0.0,
        "mean_cycle_s": round(sum(e.cycle_s for e in successes) / len(successes), 3) if successes else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m robot_agent.evaluate", description=__doc__.split("\n\n")[1])
    parser.add_argument("--robot", required=True, help="a simulated robot's driver (sim, gym:ENV_ID)")
    parser.add_argument("--policy", default="expert", help="expert (the robot's own), or a policy spec as --policy takes")
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--seed", type=int, default=100, help="first seed (episode i runs seed + i)")
    parser.add_argument("--max-seconds", type=float, default=12.0, help="robot time a cycle may take")
    parser.add_argument("--refill", type=int, default=10)
    args = parser.parse_args(argv)

    from robot_agent.__main__ import StartupError, build_policy, build_robot
    from robot_agent.config import AgentConfig

    config = AgentConfig(robot=args.robot, policy=args.policy)
    try:
        robot = build_robot(config)
        policy = build_policy(config, robot)
    except StartupError as error:
        print(f"robot_agent.evaluate: {error}", file=sys.stderr)
        return 2
    if not robot.simulated or policy is None:
        print("robot_agent.evaluate: needs a simulated robot and a policy", file=sys.stderr)
        return 2
    give_ground_truth(robot, policy)
    started = time.perf_counter()
    episodes = []
    try:
        for index in range(args.episodes):
            episode = run_episode(robot, policy, args.seed + index, max_seconds=args.max_seconds, refill=args.refill)
            episodes.append(episode)
            print(f"seed {episode.seed}: {'success' if episode.success else 'failure'} in {episode.cycle_s:.2f} s"
                  f"{'' if episode.success else ' (' + episode.detail + ')'}", file=sys.stderr)
    finally:
        close_policy = getattr(policy, "close", None)  # one that holds a process (a LeRobot policy)
        if close_policy is not None:
            close_policy()
        robot.close()
    report = {"robot": args.robot, "policy": policy.version, **summarize(episodes), "seeds": [args.seed, args.seed + args.episodes - 1],
              "wall_s": round(time.perf_counter() - started, 1), "details": [asdict(episode) for episode in episodes]}
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
