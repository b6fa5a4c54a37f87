"""The Robot interface the agent drives (small and abstract, LeRobot style).

A Robot steps one control period at a time, reports the station's status (phase, progress, done,
outcome, torque, station faults), captures its cameras, and maps teleop velocities into its own
action space. What only a simulator has (ground truth, a scripted expert, a shipped policy) is a
separate interface, `Simulation`. `SimRobot` (robot_agent/sim_robot.py) adapts the simulated nut
station (foreman_sim/); docs/robots.md lists the other drivers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from foreman_learning.policies.base import Policy
from foreman_protocol.messages import FailureMode, FailureModeSpec, FeatureSpec, RobotFeatures, TeleopSpec
from robot_agent.modes import TeleopVelocity


@dataclass(frozen=True)
class Feature:
    """One number of a robot's state or action vector: its name, unit and, for an action, the
    limits the robot accepts (None: unbounded on that side)."""

    name: str
    unit: str = ""
    low: float | None = None
    high: float | None = None


def clamp_action(action: np.ndarray, features: tuple[Feature, ...]) -> tuple[np.ndarray, int]:
    """`action` within its declared limits, and how many of its numbers were outside them. A robot
    that declares no action features gets its action as it is; a non-finite number or a wrong length
    is an error (the control loop faults and holds), never sent."""
    action = np.asarray(action, dtype=np.float64)
    if not features:
        return action, 0
    if action.shape != (len(features),):
        raise ValueError(f"action has shape {action.shape}, the robot declares {len(features)} action features")
    if not np.all(np.isfinite(action)):
        raise ValueError("action has a non-finite number")
    low = np.array([-np.inf if f.low is None else f.low for f in features])
    high = np.array([np.inf if f.high is None else f.high for f in features])
    clamped = np.clip(action, low, high)
    return clamped, int(np.count_nonzero(clamped != action))


@dataclass(frozen=True)
class StationStatus:
    phase: str = "idle"
    progress: float = 0.0
    done: bool = False
    success: bool | None = None
    failure_mode: FailureMode | None = None
    torque_nm: float | None = None
    fault: str | None = None  # a station fault code (torque_out_of_range, nut_missing, ...)
    fault_detail: str = ""


class Robot(ABC):
    name: str = "robot"
    # What kind of robot it is, as a dataset names it (LeRobot's info.json robot_type): the same for
    # every robot of a kind, unlike `name`.
    robot_type: str = ""
    cameras: list[str] = []
    # A camera's highest capture rate, where drawing or reading it is costly (a software-rendered
    # MuJoCo camera costs 15-20 ms a frame here): live video and recording share what it captures.
    camera_fps: dict[str, float] = {}
    control_hz: float = 30.0  # the robot's native control rate, used unless --control-hz says otherwise
    simulated: bool = False  # a simulation: its time may run faster than wall time (--time-scale)
    action_dim: int = 0
    state_features: tuple[Feature, ...] = ()  # what `state()` returns, in order
    action_features: tuple[Feature, ...] = ()  # what `step()` takes, in order; actions are clamped to their limits
    teleop: TeleopSpec | None = None  # how `teleop_action` maps a person's commands (None: not remotely drivable)
    phases: tuple[str, ...] = ()  # the phases `StationStatus.phase` takes, in a cycle's order (none: free text)
    # The ways its task fails that `StationStatus.failure_mode` reports and labelers choose from,
    # besides the generic takt_overrun, fault and other.
    failure_modes: tuple[FailureModeSpec, ...] = ()

    @abstractmethod
    def reset(self, seed: int) -> StationStatus:
        """Start a new cycle (a new part at the station)."""

    @abstractmethod
    def observation(self) -> Any:
        """What the policy takes (a snapshot: later steps must not change it)."""

    @abstractmethod
    def state(self) -> np.ndarray:
        """The proprioceptive state vector (recorded every step)."""

    @abstractmethod
    def step(self, action: np.ndarray) -> StationStatus:
        """Apply one action for one control period."""

    @abstractmethod
    def hold(self) -> StationStatus:
        """One control period without motion (protective stop: brakes on, tools off)."""

    @abstractmethod
    def capture(self, camera: str, size: tuple[int, int]) -> np.ndarray:
        """(H, W, 3) uint8 RGB image of `camera`. Called from camera threads."""

    @abstractmethod
    def teleop_action(self, command: TeleopVelocity) -> np.ndarray:
        """The action that moves as a person asked (velocities already clamped)."""

    def shared_action(self, policy_action: np.ndarray, nudge: TeleopVelocity | None) -> np.ndarray:
        """Shared control: the policy's action plus the person's nudge."""
        if nudge is None:
            return policy_action
        return policy_action + self.teleop_action(nudge) - self.teleop_action(
            TeleopVelocity(nudge.lease_id, nudge.seq, nudge.arm, 0.0, 0.0, 0.0, 0.0, None, nudge.received_at)
        )

    def applied_action(self) -> np.ndarray | None:
        """The command the last step or hold actually applied (a hold brakes: it is not all zeros), if
        the robot knows it. Recorded with each step so an episode can be replayed exactly."""
        return None

    def arm_poses(self) -> dict[str, dict[str, Any]] | None:
        """Each arm's end-effector pose for telemetry (protocol `ArmPose`), if the robot knows it."""
        return None

    def close(self) -> None:
        pass


class Simulation(ABC):
    """What only a simulator has beside its Robot driver: ground truth, which its scripted expert plans
    on (demonstrations and scoring only: nothing in a product path reads it), and the policy that
    ships with it. A driver of a simulated robot subclasses both Robot and Simulation."""

    @abstractmethod
    def observe_ground_truth(self, enabled: bool) -> None:
        """Add what only the simulator knows to observations, for a policy that reads it (the
        scripted expert says so with `needs_ground_truth`)."""

    @abstractmethod
    def expert_policy(self) -> Policy:
        """The simulator's scripted expert (`--policy expert`)."""

    def default_policy(self) -> Policy | None:
        """The policy that runs when --policy says nothing (the shipped trained one, or the expert)."""
        return None


def simulation_of(robot: Robot) -> Simulation | None:
    """The robot's simulator side, if it is a simulation with one (a real robot has none)."""
    return robot if isinstance(robot, Simulation) else None


def give_ground_truth(robot: Robot, policy: Policy | None) -> None:
    """Ground truth in the observations exactly when the policy is a simulator's expert that reads it."""
    simulation = simulation_of(robot)
    if simulation is not None:
        simulation.observe_ground_truth(needs_ground_truth(policy))


def declared_features(robot: Robot, control_hz: float) -> RobotFeatures | None:
    """The robot's declaration as `hello.features` sends it; None for a robot that declares no actions."""
    if not robot.action_features:
        return None
    spec = lambda feature: FeatureSpec(name=feature.name, unit=feature.unit, low=feature.low, high=feature.high)  # noqa: E731
    return RobotFeatures(control_hz=control_hz, state=[spec(f) for f in robot.state_features], action=[spec(f) for f in robot.action_features],
                         teleop=robot.teleop, phases=list(robot.phases), failure_modes=list(robot.failure_modes))


def needs_ground_truth(policy: Policy | None) -> bool:
    """The sim's scripted expert plans on the station itself, which only a simulator can observe."""
    return policy is not None and policy.needs_ground_truth
