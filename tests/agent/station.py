"""A small kinematic station implementing the agent's Robot interface, for tests that need exact
control over cycle length, outcome, faults and policy confidence (the real simulator is used by
the WebRTC/CLI tests). Two end effectors, two grippers, one nut driver."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from foreman_learning.policies.base import PolicyOutput
from foreman_protocol.messages import FailureMode
from robot_agent.modes import TeleopVelocity
from robot_agent.robot import Robot, StationStatus

# action: left v(3), left grip, right v(3), right grip, spin
ACTION_DIM = 9


class KinematicStation(Robot):
    name = "test-station"
    cameras = ["head", "wrist_left"]
    action_dim = ACTION_DIM
    simulated = True

    def __init__(self, *, control_hz: float = 30.0, cycle_steps: int = 60, succeed: bool = True,
                 fault_at_step: int | None = None, failure_mode: FailureMode = "cross_threaded") -> None:
        self.control_hz = control_hz
        self.dt = 1.0 / control_hz
        self.cycle_steps = cycle_steps
        self.succeed = succeed
        self.fault_at_step = fault_at_step
        self.failure_mode = failure_mode
        self.lock = threading.Lock()
        self.position = np.zeros(6)
        self.grip = np.zeros(2)
        self.spin = 0.0
        self.steps = 0
        self.moving_steps = 0
        self.resets = 0

    def reset(self, seed: int) -> StationStatus:
        with self.lock:
            self.position = np.zeros(6)
            self.steps = 0
            self.resets += 1
        return self._status()

    def observation(self) -> dict[str, np.ndarray]:
        return {"state": self.state(), "step": np.array(self.steps)}

    def state(self) -> np.ndarray:
        with self.lock:
            return np.concatenate([self.position, self.grip, [self.spin]])

    def step(self, action: np.ndarray) -> StationStatus:
        with self.lock:
            self.position += self.dt * np.concatenate([action[0:3], action[4:7]])
            self.grip = np.array([action[3], action[7]])
            self.spin += self.dt * action[8]
            self.steps += 1
            self.moving_steps += 1
        return self._status()

    def hold(self) -> StationStatus:
        return self._status()

    def _status(self) -> StationStatus:
        done = self.steps >= self.cycle_steps
        fault = "torque_out_of_range" if self.fault_at_step is not None and self.steps == self.fault_at_step else None
        return StationStatus(
            phase="drive" if not done else "done", progress=min(1.0, self.steps / self.cycle_steps), done=done,
            success=self.succeed if done else None, failure_mode=None if self.succeed or not done else self.failure_mode,
            torque_nm=1.5, fault=fault, fault_detail="torque 9.1 N·m > 4.0" if fault else "",
        )

    def capture(self, camera: str, size: tuple[int, int]) -> np.ndarray:
        image = np.zeros((size[1], size[0], 3), np.uint8)
        with self.lock:
            x = int((self.position[0] * 1000) % size[0])
        image[:, x : x + 8, 1] = 255
        image[size[1] // 2 :, :, 2] = 80 if camera == "head" else 160
        return image

    def teleop_action(self, command: TeleopVelocity) -> np.ndarray:
        action = np.zeros(ACTION_DIM)
        offset = 0 if command.arm == "left" else 4
        action[offset : offset + 3] = (command.vx, command.vy, command.vz)
        if command.grip is not None:
            action[offset + 3] = 1.0 if command.grip == "close" else 0.0
        action[8] = command.spin
        return action


@dataclass
class ConfidencePolicy:
    """Moves the left arm along +x; confidence follows a schedule by call number."""

    confidences: tuple[float, ...] = (0.95,)
    horizon: int = 30
    version: str = "test-policy-v1"
    supports_prefix: bool = False
    needs_ground_truth: bool = False

    def __post_init__(self) -> None:
        self.calls = 0

    def infer(self, observation: object, prefix: np.ndarray | None = None) -> PolicyOutput:
        confidence = self.confidences[min(self.calls, len(self.confidences) - 1)]
        self.calls += 1
        actions = np.zeros((self.horizon, ACTION_DIM))
        actions[:, 0] = 0.05
        return PolicyOutput(actions, confidence)


def make_agent(server_url: str, token: str, state_dir: Any, station: Robot, policy: Any, *,
               camera_size: tuple[int, int] = (160, 120), **settings: Any) -> Any:
    """A real Agent on small rendered cameras, with short retry delays for tests."""
    from robot_agent.agent import Agent
    from robot_agent.cameras import RenderedCamera
    from robot_agent.config import AgentConfig

    settings = {"video_fps": 15.0, "record_fps": 5.0, **settings}
    config = AgentConfig(server=server_url, token=token, name="r1", sim=True, ice_loopback=True, state_dir=state_dir, **settings)
    config.validate()
    cameras = [RenderedCamera(name, station.capture, size=camera_size) for name in station.cameras]
    agent = Agent(config, station, policy, cameras=cameras)
    agent.link.backoff_initial_s = 0.1
    agent.link.backoff_max_s = 0.5
    agent.uploader.backoff_max_s = 1.0
    return agent


async def stop_agent(agent: Any, task: Any, timeout: float = 15.0) -> None:
    """Stop an agent started with `asyncio.create_task(agent.run())` and wait for it to end."""
    import asyncio

    agent.stop()
    try:
        await asyncio.wait_for(task, timeout=timeout)
    except asyncio.CancelledError:
        pass
