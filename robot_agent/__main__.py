"""python -m robot_agent --server URL --token TOKEN [--sim] ... (see --help and docs/agent.md)."""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from foreman_learning.policies.base import Policy
from foreman_learning.policies.factory import EXPERT, LEROBOT_PREFIX, is_file_spec, load_policy
from robot_agent.cameras import CameraError, check_camera_source
from robot_agent.config import AgentConfig, ConfigError, load_config
from robot_agent.drivers import DriverError, make_robot
from robot_agent.link import FatalLinkError
from robot_agent.robot import Robot, simulation_of

log = logging.getLogger("robot_agent")


class StartupError(Exception):
    """Reported as one line on stderr, exit code 2."""


def build_robot(config: AgentConfig) -> Robot:
    spec = config.robot_spec
    if spec is None:
        raise StartupError("no robot driver: pass --robot sim, --robot gym:ENV_ID, --robot lerobot:TYPE (docs/robots.md) or --sim")
    try:
        robot = make_robot(spec, config.control_hz, config.robot_options, config.lerobot_python)
    except DriverError as error:
        raise StartupError(f"robot {spec}: {error}") from None
    if config.time_scale != 1.0 and not robot.simulated:
        robot.close()
        raise StartupError(f"--time-scale speeds up a simulation; robot {spec} is not one")
    if config.sim_supervisor_token and spec != "sim":
        robot.close()
        raise StartupError("--sim-supervisor-token drives the nut station's scripted supervisor: it needs --robot sim")
    return robot


def build_policy(config: AgentConfig, robot: Robot) -> Policy | None:
    spec = config.policy
    simulation = simulation_of(robot)
    if spec is None:
        return simulation.default_policy() if simulation is not None else None
    if spec == EXPERT:  # the robot's own: each simulation has its expert
        if simulation is None:
            raise StartupError(f"robot {robot.name} has no scripted expert (a simulator's, which reads its ground truth)")
        return simulation.expert_policy()
    if spec.startswith(LEROBOT_PREFIX):
        from robot_agent.lerobot_policy import LeRobotPolicy

        try:
            return LeRobotPolicy(Path(spec[len(LEROBOT_PREFIX):]), robot, config.lerobot_python)
        except (FileNotFoundError, ValueError) as error:
            raise StartupError(f"cannot load policy {spec}: {error}") from None
    try:
        return load_policy(spec, language=config.language, action_dim=robot.action_dim or None)
    except FileNotFoundError:
        raise StartupError(f"policy file not found: {spec}") from None
    except Exception as error:  # noqa: BLE001 - any loader failure is a startup error
        raise StartupError(f"cannot load policy {spec}: {type(error).__name__}: {error}") from None


def rollout_loader(config: AgentConfig, robot: Robot) -> Callable[[str], Policy]:
    """How the agent loads a rolled-out checkpoint file: a zipped LeRobot checkpoint runs with LeRobot
    (unpacked beside the file), anything else goes to the policy factory."""

    def load(spec: str) -> Policy:
        from robot_agent.lerobot_policy import LeRobotPolicy, is_lerobot_archive, unpack_lerobot_archive

        path = Path(spec)
        if is_lerobot_archive(path):
            return LeRobotPolicy(unpack_lerobot_archive(path, path.with_suffix("")), robot, config.lerobot_python)
        return load_policy(spec, language=config.language, action_dim=robot.action_dim or None)

    return load


def preflight(config: AgentConfig) -> None:
    """Cheap checks before anything starts, so a typo is one line and exit 2."""
    for name, source in config.camera.items():
        try:
            check_camera_source(source)
        except CameraError as error:
            raise CameraError(f"camera {name}: {error}") from None
    spec = config.policy
    if spec is not None and is_file_spec(spec) and not Path(spec).exists():
        raise StartupError(f"policy file not found: {spec}")
    if spec is not None and spec.startswith(LEROBOT_PREFIX) and not (Path(spec[len(LEROBOT_PREFIX):]) / "config.json").is_file():
        raise StartupError(f"no LeRobot checkpoint at {spec[len(LEROBOT_PREFIX):]} (a pretrained_model directory with config.json)")


async def run(config: AgentConfig) -> None:
    from robot_agent.agent import Agent

    robot = build_robot(config)
    policy = build_policy(config, robot)
    agent = Agent(config, robot, policy, load_policy=rollout_loader(config, robot))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, agent.stop)
    watchdog = LoopWatchdog(loop)
    watchdog.start()
    try:
        await agent.run()
    finally:
        watchdog.stop()


class LoopWatchdog:
    """The event loop carries the link, the control loop and the cameras: if it stalls, say so
    once per stall with every thread's stack, so a stuck agent explains itself in its log."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stall_s: float = 5.0) -> None:
        import threading

        self.loop = loop
        self.stall_s = stall_s
        self.beat = time.monotonic()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="loop-watchdog", daemon=True)

    def start(self) -> None:
        self._tick()
        self.thread.start()

    def stop(self) -> None:
        self.done.set()

    def _tick(self) -> None:
        self.beat = time.monotonic()
        if not self.done.is_set():
            self.loop.call_later(1.0, self._tick)

    def _watch(self) -> None:
        reported = False
        while not self.done.wait(1.0):
            stalled = time.monotonic() - self.beat
            if stalled > self.stall_s and not reported:
                log.error("the event loop has not run for %.1f s; stacks follow", stalled)
                faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
                reported = True
            elif stalled <= self.stall_s:
                reported = False


def limit_torch_threads() -> None:
    """One intra-op thread for the policy (read by torch when it is imported): its network is small,
    and a second torch thread spin-waits against the control loop, the video encoders and other
    agents on the same cores (one sped-up sim agent used 158% of a core with torch's default).
    OMP_NUM_THREADS set by whoever starts the agent wins."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = load_config(argv)
        preflight(config)
    except (ConfigError, CameraError, StartupError) as error:
        print(f"robot_agent: {error}", file=sys.stderr)
        return 2
    faulthandler.enable()  # a native crash (codec, torch) leaves Python stacks on stderr
    limit_torch_threads()
    logging.basicConfig(level=config.log_level.upper(), format=f"%(asctime)s {config.name} %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aioice").setLevel(logging.WARNING)
    logging.getLogger("aiortc").setLevel(logging.WARNING)
    try:
        asyncio.run(run(config))
    except (StartupError, CameraError, FatalLinkError) as error:
        print(f"robot_agent: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
