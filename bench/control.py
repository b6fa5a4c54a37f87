"""bench control: the agent's real control loop on the simulated station with the shipped policy.

- rate and jitter: one cycle at 30 Hz with asynchronous chunk execution (inference in a worker
  thread); jitter = how late each tick wakes after its deadline.
- cycle time, asynchronous vs synchronous (inference inline, the loop waits for it), same seed.
- the same loop on ALOHA (gym-aloha's bimanual insertion on MuJoCo, --robot gym:gym_aloha/AlohaInsertion-v0)
  at its native 50 Hz with its scripted expert, next to the nut station: rate held, jitter, the
  control loop's CPU (process CPU time over wall time, a fraction of one core), and what one camera
  frame costs each robot to render at the sizes live video asks for.
Real time (time scale 1): about two and a half minutes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import finish, percentile
from robot_agent.agent import policy_output
from robot_agent.chunking import ChunkExecutor, thread_submit
from robot_agent.clock import MonotonicClock
from robot_agent.control import ControlLoop, LoopSettings
from robot_agent.modes import ModeController
from robot_agent.robot import Robot, give_ground_truth, simulation_of
from robot_agent.safety import EstopLatch, VelocityLimits
from robot_agent.sim_robot import SimRobot

SEED = 1000
ALOHA_SEED = 100
ALOHA_ENV = "gym_aloha/AlohaInsertion-v0"
ALOHA_TAKT_S = 12.0  # the demo's insertion station
RENDER_SIZES = ((640, 480), (320, 240))
RENDER_FRAMES = 20


class RecordingClock(MonotonicClock):
    """Robot time as usual, noting how late each sleep wakes after its deadline."""

    def __init__(self) -> None:
        super().__init__(1.0)
        self.lateness_ms: list[float] = []

    async def sleep_until(self, t: float) -> None:
        await super().sleep_until(t)
        self.lateness_ms.append(max(0.0, (self.now() - t) * 1000.0))


def one_cycle(synchronous: bool, state_dir: Path, robot: Robot | None = None, seed: int = SEED, takt_s: float = 76.0) -> dict[str, Any]:
    robot = robot or SimRobot()
    simulation = simulation_of(robot)
    assert simulation is not None, "bench control runs simulated robots"
    policy = simulation.default_policy()
    assert policy is not None
    give_ground_truth(robot, policy)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)

    def infer(observation: Any, prefix: Any) -> Any:
        return policy_output(policy.infer(observation))

    executor = ChunkExecutor(infer, thread_submit(pool), refill_below=10, prefix_length=0, synchronous=synchronous,
                             supports_prefix=False, action_dim=robot.action_dim)
    clock = RecordingClock()
    modes = ModeController(clock, EstopLatch(state_dir), VelocityLimits())
    ended: list[Any] = []
    loop = ControlLoop(robot, modes, executor, clock, lambda message, reliable: None,
                       settings=LoopSettings(control_hz=robot.control_hz, takt_s=takt_s, seed=seed, max_cycles=1,
                                             takt_warning_fraction=2.0, intervention_confidence=0.0),
                       on_cycle_end=lambda result, kept: ended.append(result))
    started, cpu_started = time.monotonic(), time.process_time()
    try:
        asyncio.run(asyncio.wait_for(loop.run(), timeout=2 * takt_s + 40))
    except TimeoutError:  # not done by twice its takt: the loop asked for a person nobody here answers
        pass
    wall, cpu = time.monotonic() - started, time.process_time() - cpu_started
    pool.shutdown(wait=False)
    return {"cycle_s": ended[0].duration_s if ended else None, "failure_mode": ended[0].failure_mode if ended else None,
            "ticks": loop.stats.ticks, "wall_s": wall, "cpu_fraction": cpu / wall,
            "lateness_ms": clock.lateness_ms, "overruns": loop.stats.overruns, "outcomes": loop.stats.outcomes,
            "inferences": executor.inferences, "inference_ms": executor.inference_ms}


def render_ms(robot: Robot, camera: str) -> dict[str, float | None]:
    """Median ms to render one frame of `camera` at each of RENDER_SIZES (after one warm-up frame)."""
    result: dict[str, float | None] = {}
    for width, height in RENDER_SIZES:
        robot.capture(camera, (width, height))
        times = []
        for _ in range(RENDER_FRAMES):
            started = time.perf_counter()
            robot.capture(camera, (width, height))
            times.append((time.perf_counter() - started) * 1000.0)
        result[f"{width}x{height}"] = percentile(times, 50)
    return result


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        print("one cycle, asynchronous chunk execution…", flush=True)
        asynchronous = one_cycle(False, Path(directory) / "a")
        print("one cycle, synchronous chunk execution…", flush=True)
        synchronous = one_cycle(True, Path(directory) / "s")
        print(f"one cycle of ALOHA ({ALOHA_ENV}, 50 Hz, its scripted expert)…", flush=True)
        from robot_agent.drivers.aloha import AlohaRobot

        aloha_robot = AlohaRobot(ALOHA_ENV)
        aloha = one_cycle(False, Path(directory) / "aloha", aloha_robot, ALOHA_SEED, ALOHA_TAKT_S)
        aloha_render = render_ms(aloha_robot, "top")
        aloha_robot.close()
        nut_robot = SimRobot()
        nut_robot.reset(SEED)
        nut_render = render_ms(nut_robot, nut_robot.cameras[0])
    lateness = asynchronous["lateness_ms"]
    rate = asynchronous["ticks"] / asynchronous["wall_s"]
    metrics = {
        "rate_hz": round(rate, 2),
        "jitter_p50_ms": percentile(lateness, 50),
        "jitter_p99_ms": percentile(lateness, 99),
        "async_cycle_s": round(asynchronous["cycle_s"], 2) if asynchronous["cycle_s"] else None,
        "sync_cycle_s": round(synchronous["cycle_s"], 2) if synchronous["cycle_s"] else None,
        "sync_jitter_p99_ms": percentile(synchronous["lateness_ms"], 99),
        "async_overruns": asynchronous["overruns"], "sync_overruns": synchronous["overruns"],
        "async_outcome": asynchronous["outcomes"], "sync_outcome": synchronous["outcomes"],
        "inferences": asynchronous["inferences"], "seed": SEED,
        "loop_cpu_fraction": round(asynchronous["cpu_fraction"], 3),
        "render_ms": nut_render,
        "aloha": {
            "control_hz": aloha_robot.control_hz,
            "rate_hz": round(aloha["ticks"] / aloha["wall_s"], 2),
            "jitter_p50_ms": percentile(aloha["lateness_ms"], 50),
            "jitter_p99_ms": percentile(aloha["lateness_ms"], 99),
            "overruns": aloha["overruns"],
            "cycle_s": round(aloha["cycle_s"], 2) if aloha["cycle_s"] else None,
            "outcome": aloha["outcomes"], "seed": ALOHA_SEED,
            "loop_cpu_fraction": round(aloha["cpu_fraction"], 3),
            "render_ms": aloha_render,
        },
    }
    # Cycle times compare when both cycles did the job; a synchronous cycle that ran out of takt
    # stopped at 76 s, so its time is a lower bound. One that failed otherwise (a dropped nut after
    # 8 s, say) did not do the job at all: no comparison, and the summary says why.
    async_done = bool(asynchronous["outcomes"].get("success"))
    sync_mode = synchronous["failure_mode"]
    comparable = async_done and synchronous["cycle_s"] is not None and sync_mode in (None, "takt_overrun")
    faster = None
    if comparable:
        faster = round(100 * (metrics["sync_cycle_s"] - metrics["async_cycle_s"]) / metrics["sync_cycle_s"], 1)
    metrics["async_faster_pct"] = faster
    metrics["sync_failure_mode"] = sync_mode
    metrics["sync_cycle_is_lower_bound"] = sync_mode == "takt_overrun"
    if faster is not None:
        verdict = f"async {faster}% faster (goal ≥ 25%)"
    elif not async_done:
        verdict = f"not comparable: the asynchronous cycle did not succeed ({asynchronous['failure_mode']})"
    else:
        verdict = f"not comparable: the synchronous cycle failed ({sync_mode}) instead of finishing the part"
    goals = {"jitter_p99_ms": "≤ 5", "async_faster_pct": "≥ 25"}
    summary = [
        f"control loop: {rate:.1f} Hz, jitter p50 {metrics['jitter_p50_ms']} ms, p99 {metrics['jitter_p99_ms']} ms (goal ≤ 5)",
        f"cycle time (seed {SEED}): async {metrics['async_cycle_s']} s {asynchronous['outcomes']}, sync {metrics['sync_cycle_s']} s "
        f"{synchronous['outcomes']}{' (ran out of takt: a lower bound)' if metrics['sync_cycle_is_lower_bound'] else ''} "
        f"→ {verdict}",
        f"ALOHA loop ({ALOHA_ENV}, seed {ALOHA_SEED}): {metrics['aloha']['rate_hz']} Hz of {aloha_robot.control_hz:g}, "
        f"jitter p99 {metrics['aloha']['jitter_p99_ms']} ms, {metrics['aloha']['overruns']} overruns, cycle {metrics['aloha']['cycle_s']} s "
        f"{aloha['outcomes']}; loop CPU {metrics['aloha']['loop_cpu_fraction']:.0%} of a core (nut station {metrics['loop_cpu_fraction']:.0%})",
        f"render one frame, ms (median of {RENDER_FRAMES}): ALOHA top {aloha_render}, nut station {nut_robot.cameras[0]} {nut_render}",
    ]
    return finish("control", metrics, goals, summary)
