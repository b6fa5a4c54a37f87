"""SimRobot: the simulated nut station (foreman_sim/) behind the agent's Robot interface.

Cameras `head`, `wrist_left`, `wrist_right` are rendered on demand at any size (640×480 for video),
by a VideoRenderer (the head camera's static layer is kept, only moving shapes are redrawn).
Observations are snapshots: the state vector and the two wrist images the learned policy looks at
(32×32 grey); with ground truth observed (a policy that asks for it: the scripted expert), also a
copy of the station.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from foreman_learning.policies.base import Policy
from foreman_protocol.messages import FailureModeSpec, TeleopSpec
from foreman_sim.render import VideoRenderer, observe, scene_of
from foreman_sim.station import ARMS, DT, FAILURE_MODE_LABELS, MAX_SPEED, MAX_SPIN, NutStation
from robot_agent.modes import TeleopVelocity
from robot_agent.robot import Feature, Robot, Simulation, StationStatus

log = logging.getLogger(__name__)

T = TypeVar("T")


def status_of(station: NutStation) -> StationStatus:
    outcome = station.outcome
    return StationStatus(
        phase=station.phase(), progress=station.progress(), done=outcome.done, success=outcome.success,
        failure_mode=outcome.failure_mode, torque_nm=max(arm.torque for arm in station.arms.values()),
        fault=station.fault, fault_detail=station.fault_detail or outcome.detail,
    )


# NutStation.state_vector and NutStation.step, per arm in ARMS order.
SIM_STATE_FEATURES = (
    *(Feature(f"{side}.{name}", unit) for side in ARMS for name, unit in (
        ("x", "m"), ("y", "m"), ("z", "m"), ("vx", "m/s"), ("vy", "m/s"), ("vz", "m/s"), ("grip", "0..1"),
        ("torque", "10 N·m"), ("nuts_installed", "count"))),
    Feature("cycle_time", "takt"),
)
SIM_ACTION_FEATURES = tuple(
    feature for side in ARMS for feature in (
        Feature(f"{side}.vx", "m/s", -MAX_SPEED, MAX_SPEED), Feature(f"{side}.vy", "m/s", -MAX_SPEED, MAX_SPEED),
        Feature(f"{side}.vz", "m/s", -MAX_SPEED, MAX_SPEED), Feature(f"{side}.grip", "close > 0 > open", -1.0, 1.0),
        Feature(f"{side}.spin", "rev/s", 0.0, MAX_SPIN))
)


class SimRobot(Robot, Simulation):
    name = "sim-nut-station"
    robot_type = "foreman_sim_nut_station"
    cameras = ["head", "wrist_left", "wrist_right"]
    action_dim = NutStation.ACTION_DIM
    control_hz = 1.0 / DT
    simulated = True
    state_features = SIM_STATE_FEATURES
    action_features = SIM_ACTION_FEATURES
    teleop = TeleopSpec(space="end_effector", arms=list(ARMS), spin="drive the nut", grip=True)
    failure_modes = tuple(FailureModeSpec(key=key, label=label) for key, label in FAILURE_MODE_LABELS.items())

    def __init__(self, control_hz: float = 1.0 / DT) -> None:
        if abs(control_hz * DT - 1.0) > 1e-6:
            raise ValueError(f"the simulated station runs at {1 / DT:.0f} Hz (asked for {control_hz:g} Hz)")
        self.lock = threading.Lock()
        self.station = NutStation(0)
        self.ground_truth = False
        self.video = VideoRenderer()

    def reset(self, seed: int) -> StationStatus:
        with self.lock:
            self.station.reset(seed)
            return status_of(self.station)

    def arm_poses(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return {
                side: {"x_mm": round(float(arm.position[0]) * 1000, 1), "y_mm": round(float(arm.position[1]) * 1000, 1),
                       "z_mm": round(float(arm.position[2]) * 1000, 1), "grip": round(min(1.0, max(0.0, float(arm.grip))), 2),
                       "holding": arm.nut is not None}
                for side, arm in self.station.arms.items()
            }

    def observe_ground_truth(self, enabled: bool) -> None:
        self.ground_truth = enabled

    def observation(self) -> dict[str, Any]:
        with self.lock:
            return observe(self.station, ground_truth=self.ground_truth)

    def state(self) -> np.ndarray:
        with self.lock:
            return self.station.state_vector()

    def step(self, action: np.ndarray) -> StationStatus:
        with self.lock:
            self.station.step(action)
            return status_of(self.station)

    def hold(self) -> StationStatus:
        with self.lock:
            self.station.hold()
            return status_of(self.station)

    def snapshot(self) -> NutStation:
        """A copy of the station's ground truth (for the scripted supervisor, never for a policy)."""
        with self.lock:
            return copy.deepcopy(self.station)

    def inspect(self, look: Callable[[NutStation], T]) -> T:
        """`look` at the live station under the lock (read only; cheaper than a snapshot's deep copy)."""
        with self.lock:
            return look(self.station)

    def applied_action(self) -> np.ndarray | None:
        with self.lock:
            action = self.station.last_action
            return None if action is None else action.copy()

    def capture(self, camera: str, size: tuple[int, int]) -> np.ndarray:
        with self.lock:  # copy what the cameras see under the lock, draw outside it: the control loop never waits for video
            scene = scene_of(self.station)
        return self.video.render(scene, camera, size)

    def teleop_action(self, command: TeleopVelocity) -> np.ndarray:
        """The commanded arm moves as asked; the other arm stands still and keeps its grip."""
        with self.lock:
            action = np.zeros(self.action_dim)
            for index, side in enumerate(ARMS):
                arm = self.station.arms[side]
                action[5 * index + 3] = arm.grip_command
                if side == command.arm:
                    action[5 * index: 5 * index + 3] = (command.vx, command.vy, command.vz)
                    action[5 * index + 4] = command.spin
                    if command.grip is not None:
                        action[5 * index + 3] = 1.0 if command.grip == "close" else -1.0
            return action

    def shared_action(self, policy_action: np.ndarray, nudge: TeleopVelocity | None) -> np.ndarray:
        if nudge is None:
            return policy_action
        action = np.array(policy_action, dtype=np.float64)
        index = ARMS.index(nudge.arm)
        action[5 * index: 5 * index + 3] += (nudge.vx, nudge.vy, nudge.vz)
        return action

    def expert_policy(self) -> Policy:
        from foreman_learning.policies.factory import EXPERT, load_policy

        return load_policy(EXPERT)

    def default_policy(self) -> Policy:
        """The shipped behaviour-cloned policy (about 90% on held-out seeds); the expert without it."""
        # Imported here: torch loads when a policy does, not with the robot.
        from foreman_learning.policies.factory import EXPERT, load_policy
        from foreman_learning.policies.visuomotor import DEFAULT_WEIGHTS

        if DEFAULT_WEIGHTS.is_file():
            return load_policy(str(DEFAULT_WEIGHTS))
        log.warning("no trained weights at %s: the sim runs its scripted expert", DEFAULT_WEIGHTS)
        return load_policy(EXPERT)
