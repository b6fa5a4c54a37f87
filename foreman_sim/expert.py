"""The scripted expert: a state-feedback controller that reads the station's ground truth.

It can take over from any state (as a person would mid-cycle): each control period it looks at
where each arm, its nut and its hole are, and commands smooth velocities (acceleration-limited, so
a carried nut never slips), slow contact, and a driver that slows near the seat and stops inside
the torque window. `teleop_command(station, side)` gives the same decision as a person's teleop
command for one arm, which is how the scripted supervisor drives through the teleop path.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from foreman_sim.station import (
    ARMS,
    CONTACT_Z,
    DT,
    HOME,
    NUT_ON_FEEDER_Z,
    SEAT_REVS,
    Arm,
    NutStation,
)

TRAVEL_Z = 0.06
TRAVEL_SPEED = 0.045
APPROACH_SPEED = 0.03
CONTACT_SPEED = 0.012
FUNNEL_CENTRED_M = 0.0008
FUNNEL_SLOPE = 15.0  # metres of height per metre of horizontal error
PICK_CLOSE_M = 0.0015
ACCEL = 1.0  # m/s²
GAIN = 4.0  # 1/s: proportional gain on position error
MIN_SPEED = 0.006
DRIVE_SPIN = 0.8
SEAT_SPIN = 0.2
STOP_TORQUE_NM = 8.2


@dataclass(frozen=True)
class ArmCommand:
    """One arm's command in teleop units: velocities (m/s), driver spin (rev/s), grip."""

    vx: float
    vy: float
    vz: float
    spin: float
    grip: str  # "open" | "close"

    @classmethod
    def moving(cls, velocity: np.ndarray, spin: float, grip: str) -> ArmCommand:
        return cls(float(velocity[0]), float(velocity[1]), float(velocity[2]), spin, grip)

    def as_action(self) -> np.ndarray:
        return np.array([self.vx, self.vy, self.vz, 1.0 if self.grip == "close" else -1.0, self.spin])


def _toward(position: np.ndarray, target: np.ndarray, speed: float) -> np.ndarray:
    """Proportional velocity toward `target`, capped at `speed`. Horizontally purely proportional (a
    smooth function of the error, which a learned policy can imitate); vertically with a small
    minimum speed so the last millimetres of a descent do not creep."""
    error = target - position
    velocity = GAIN * error
    norm = float(np.linalg.norm(velocity))
    if norm > speed:
        return velocity * (speed / norm)
    if abs(error[2]) > 0.0002 and abs(velocity[2]) < MIN_SPEED:
        velocity[2] = np.sign(error[2]) * min(MIN_SPEED, abs(error[2]) / DT)
    return velocity


def _arm_command(station: NutStation, arm: Arm, pick_close_m: float = PICK_CLOSE_M) -> ArmCommand:
    position = arm.position
    closed, opened = arm.grip >= 1.0, arm.grip <= 0.0
    nut = arm.nut
    if nut is not None and nut.state == "threading":
        if arm.torque >= STOP_TORQUE_NM or (arm.revs > SEAT_REVS and arm.spin == 0.0 and arm.torque > 7.2):
            return ArmCommand(0.0, 0.0, 0.0, 0.0, "open")  # in the window: let go
        spin = DRIVE_SPIN if arm.revs < SEAT_REVS - 0.3 else SEAT_SPIN
        return ArmCommand(0.0, 0.0, 0.0, spin, "close")
    if nut is not None:  # carrying to the hole
        if not closed:
            return ArmCommand(0.0, 0.0, 0.0, 0.0, "close")
        hole = station.target_hole(arm.side)
        assert hole is not None
        return ArmCommand.moving(_funnel(position, hole, CONTACT_Z - 0.01, CONTACT_Z), 0.0, "close")
    # Empty-handed: open, then go and pick the next nut (or home when done).
    if arm.done:
        velocity = _toward(position, HOME[arm.side], TRAVEL_SPEED)
        return ArmCommand.moving(velocity, 0.0, "open")
    target_nut = arm.feeder_nut
    if arm.grip_command > 0 and not opened and target_nut is not None:
        return ArmCommand(0.0, 0.0, 0.0, 0.0, "close")  # closing on the nut: finish closing
    if not opened:
        lift = np.array([0.0, 0.0, APPROACH_SPEED]) if position[2] < TRAVEL_Z else np.zeros(3)
        return ArmCommand.moving(lift, 0.0, "open")
    assert target_nut is not None
    goal = target_nut.position
    error = float(np.linalg.norm(goal[:2] - position[:2]))
    if error < pick_close_m and position[2] - NUT_ON_FEEDER_Z < 0.0015:
        return ArmCommand(0.0, 0.0, 0.0, 0.0, "close")
    return ArmCommand.moving(_funnel(position, goal[:2], NUT_ON_FEEDER_Z - 0.003, NUT_ON_FEEDER_Z + 0.004), 0.0, "open")


def _funnel(position: np.ndarray, goal_xy: np.ndarray, bottom_z: float, slow_z: float) -> np.ndarray:
    """Move over `goal_xy` and come down as the horizontal error shrinks (a funnel, no sudden
    decisions): far away the arm travels at TRAVEL_Z; it only gets low when it is centred."""
    error = float(np.linalg.norm(goal_xy - position[:2]))
    z_goal = min(TRAVEL_Z, bottom_z + max(0.0, error - FUNNEL_CENTRED_M) * FUNNEL_SLOPE)
    velocity = _toward(position, np.array([goal_xy[0], goal_xy[1], z_goal]), TRAVEL_SPEED)
    down_limit = CONTACT_SPEED if position[2] < slow_z + 0.008 else APPROACH_SPEED
    velocity[2] = max(velocity[2], -down_limit)
    return velocity


def _limit_accel(arm: Arm, command: ArmCommand) -> ArmCommand:
    wanted = np.array([command.vx, command.vy, command.vz])
    change = wanted - arm.velocity
    norm = float(np.linalg.norm(change))
    limit = ACCEL * DT
    if norm > limit:
        wanted = arm.velocity + change * (limit / norm)
    return ArmCommand.moving(wanted, command.spin, command.grip)


class Expert:
    """The controller, per step (`action`, `teleop_command`) or as a short chunk rolled forward on a
    copy of the station (`plan`); foreman_learning.policies.expert makes it a policy."""

    def __init__(self, horizon: int = 15) -> None:
        self.horizon = horizon

    @staticmethod
    def teleop_command(station: NutStation, side: str, pick_close_m: float = PICK_CLOSE_M) -> ArmCommand:
        """What the expert would command for one arm now, in teleop units (the scripted supervisor).
        `pick_close_m`: how well centred over its nut the gripper must be before it closes."""
        arm = station.arms[side]
        return _limit_accel(arm, _arm_command(station, arm, pick_close_m))

    @staticmethod
    def action(station: NutStation) -> np.ndarray:
        return np.concatenate([Expert.teleop_command(station, side).as_action() for side in ARMS])

    def plan(self, station: NutStation, steps: int | None = None) -> np.ndarray:
        """(steps, ACTION_DIM) actions, rolled out on a copy of `station`."""
        rollout = copy.deepcopy(station)
        actions = []
        for _ in range(steps or self.horizon):
            action = self.action(rollout)
            actions.append(action)
            if rollout.step(action).done:
                break
        return np.asarray(actions)
