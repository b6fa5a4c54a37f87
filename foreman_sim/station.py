"""The simulated station: dual-side self-tapping nut installation on a die-cast part (the seed trial).

Two arms work in parallel, each on its side of the part: pick a nut from its feeder, carry it over a
hole, lower it onto the thread, drive it to torque, release, and do the same for the second hole.
Physics-lite, at the control period: every failure comes from the motion that was commanded —

- missed_pick:     the gripper closed while not centred on a nut (the nut is knocked off the feeder);
- dropped_nut:     the gripper opened with a nut not yet threaded, or the arm jerked while carrying it
                   (an off-centre grasp holds the nut by an edge: it slips at a smaller jerk);
- misaligned_nut:  the nut met the part more than HOLE_TOLERANCE_M off the hole's axis (the jaws centre
                   a nut only partly, so an off-centre grasp also carries the nut off the gripper's axis);
- cross_threaded:  it met the hole too fast or still moving sideways, or the arm pushed sideways while
                   the nut was threading;
- over_torque:     the driver kept turning past the seat (stripped thread);
- under_torque:    the nut was released before it reached seating torque;
- takt_overrun:    the cycle took longer than the takt.

Everything random (part pose from imperfect fixturing, where the feeder presents each nut, thread
friction and how stiffly each cast thread seats) comes from the episode's seed, so a seed and an
action sequence give one outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

DT = 1.0 / 30.0
TAKT_S = 76.0

# Geometry (metres, table frame: x to the right, y away from the robot, z up).
PART_CENTRE = np.array([0.0, 0.45])
HOLE_OFFSETS = {"left": np.array([[-0.15, -0.035], [-0.15, 0.035]]), "right": np.array([[0.15, -0.035], [0.15, 0.035]])}
FEEDERS = {"left": np.array([-0.34, 0.17]), "right": np.array([0.34, 0.17])}
HOME = {"left": np.array([-0.22, 0.30, 0.10]), "right": np.array([0.22, 0.30, 0.10])}
PART_TOP_Z = 0.020
NUT_ON_FEEDER_Z = 0.0
CONTACT_Z = PART_TOP_Z + 0.004  # gripper height when a held nut touches the part
FIXTURE_SIGMA_M = 0.007
FIXTURE_YAW_SIGMA_RAD = np.radians(1.5)
FEEDER_SIGMA_M = 0.0035

# Tolerances and limits.
PICK_TOLERANCE_M = 0.0025
PICK_HEIGHT_TOLERANCE_M = 0.004
HOLE_TOLERANCE_M = 0.0015
MAX_CONTACT_SPEED = 0.025  # m/s downward when the nut meets the hole
MAX_CONTACT_SIDE_SPEED = 0.012  # m/s sideways when the nut meets the hole: faster tilts it onto the thread
JAW_CENTRING = 0.8  # closing jaws pull an off-centre nut this share of the way onto the gripper's axis
SIDE_LOAD_TAU_S = 0.2  # the wrist's compliance springs back with this time constant
SIDE_LOAD_LIMIT_M = 0.003  # sustained sideways deflection that cross-threads (≈ 15 mm/s held)
MAX_ACCEL_CARRYING = 3.0  # m/s²: more and the nut slips out
MAX_SPEED = 0.25
HOLD_DECEL = 2.0  # m/s²: a protective stop brakes, it does not jerk; carrying, it brakes within what the grasp holds
MAX_SPIN = 3.0  # rev/s
GRIP_STEPS = 6  # control periods to close or open the gripper
THREAD_PITCH_M = 0.001
SEAT_REVS = 5.0
RUNNING_TORQUE_NM = 0.6
SEAT_STIFFNESS_NM_PER_REV = 12.0  # typical; each cast hole seats stiffer or softer (SEAT_STIFFNESS_SIGMA)
SEAT_STIFFNESS_SIGMA = 0.3  # log-normal spread of the casting's thread stiffness, hole to hole
TORQUE_MIN_NM = 7.5
TORQUE_MAX_NM = 9.5
TORQUE_FAULT_NM = 9.0  # station fault: stop and ask for a person before the thread strips

NUTS_PER_ARM = 2
ARMS = ("left", "right")

FailureMode = Literal["misaligned_nut", "cross_threaded", "over_torque", "under_torque", "dropped_nut", "missed_pick", "takt_overrun"]
FAILURE_MODES: tuple[FailureMode, ...] = ("misaligned_nut", "cross_threaded", "over_torque", "under_torque", "dropped_nut", "missed_pick", "takt_overrun")
# What the station reports and a labeler chooses, for a person (a fixturing fault is seen, never reported).
FAILURE_MODE_LABELS: dict[str, str] = {
    "misaligned_nut": "Misaligned nut", "cross_threaded": "Cross-threaded", "over_torque": "Over-torque / stripped thread",
    "under_torque": "Under-torque / not seated", "dropped_nut": "Dropped nut", "missed_pick": "Missed pick",
    "part_misfixtured": "Part mis-fixtured",
}


@dataclass
class Nut:
    position: np.ndarray  # (3,) where it is
    state: str = "feeder"  # feeder | held | threading | installed | lost


@dataclass
class Arm:
    side: str
    position: np.ndarray
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(3))
    grip: float = 0.0  # 0 open … 1 closed
    grip_command: float = -1.0
    spin: float = 0.0
    revs: float = 0.0  # of the nut being driven
    side_load: float = 0.0  # sideways deflection of the compliant wrist while threading (m)
    torque: float = 0.0
    nut: Nut | None = None  # the nut it holds or drives
    nut_offset: np.ndarray = field(default_factory=lambda: np.zeros(2))  # held nut's centre minus the gripper's axis
    grip_quality: float = 1.0  # 1 for a centred grasp, toward 0 at the edge of PICK_TOLERANCE_M
    installed: int = 0
    feeder_nut: Nut | None = None  # the nut its feeder presents now

    @property
    def done(self) -> bool:
        return self.installed >= NUTS_PER_ARM


@dataclass(frozen=True)
class Outcome:
    done: bool
    success: bool | None = None
    failure_mode: FailureMode | None = None
    detail: str = ""


class NutStation:
    """One die-cast part at the station; `step(action)` advances one control period."""

    # Action layout per arm: vx, vy, vz (m/s), grip (>0 close, <0 open), spin (rev/s) → 10 numbers.
    ACTION_DIM = 10
    STATE_DIM = 2 * 9 + 1

    def __init__(self, seed: int = 0) -> None:
        self.reset(seed)

    def reset(self, seed: int) -> None:
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        offset = self.rng.normal(0.0, FIXTURE_SIGMA_M, 2)
        yaw = self.rng.normal(0.0, FIXTURE_YAW_SIGMA_RAD)
        rotation = np.array([[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]])
        self.part_centre = PART_CENTRE + offset
        self.part_yaw = float(yaw)
        self.holes = {side: [self.part_centre + rotation @ o for o in HOLE_OFFSETS[side]] for side in ARMS}
        self.friction = float(self.rng.uniform(0.8, 1.25))  # thread friction of this part's casting
        # Drawn from their own stream so the pose and feeder draws of a seed stay what they were.
        casting = np.random.default_rng([self.seed, 1])
        self.seat_stiffness = {side: [float(SEAT_STIFFNESS_NM_PER_REV * casting.lognormal(0.0, SEAT_STIFFNESS_SIGMA))
                                      for _ in HOLE_OFFSETS[side]] for side in ARMS}
        self.arms = {side: Arm(side, HOME[side].copy()) for side in ARMS}
        for arm in self.arms.values():
            arm.feeder_nut = self._present_nut(arm.side)
        self.installed_nuts: list[Nut] = []
        self.t = 0.0
        self.steps = 0
        self.outcome = Outcome(done=False)
        self.fault: str | None = None
        self.fault_detail = ""
        self.last_action: np.ndarray | None = None  # what the last step applied (a hold's braking command too)

    def _present_nut(self, side: str) -> Nut:
        xy = FEEDERS[side] + np.clip(self.rng.normal(0.0, FEEDER_SIGMA_M, 2), -0.008, 0.008)
        return Nut(np.array([xy[0], xy[1], NUT_ON_FEEDER_Z]))

    # ------------------------------------------------------------------ targets (ground truth)

    def target_hole(self, side: str) -> np.ndarray | None:
        arm = self.arms[side]
        return None if arm.done else self.holes[side][arm.installed]

    # ------------------------------------------------------------------ stepping

    def step(self, action: np.ndarray) -> Outcome:
        if self.outcome.done:
            return self.outcome
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape[0] != self.ACTION_DIM or not np.all(np.isfinite(action)):
            raise ValueError(f"action must be {self.ACTION_DIM} finite numbers")
        self.fault = None
        self.last_action = action.copy()
        for index, side in enumerate(ARMS):
            failure = self._step_arm(self.arms[side], action[5 * index: 5 * index + 5])
            if failure is not None:
                self.outcome = Outcome(True, False, failure[0], f"{side} arm: {failure[1]}")
                break
        self.t += DT
        self.steps += 1
        if not self.outcome.done:
            if all(arm.done for arm in self.arms.values()):
                self.outcome = Outcome(True, True)
            elif self.t > TAKT_S:
                self.outcome = Outcome(True, False, "takt_overrun", f"cycle ran past the {TAKT_S:.0f} s takt")
        return self.outcome

    def hold(self) -> Outcome:
        """Protective stop (a controlled one): arms brake at HOLD_DECEL, driver off, grippers as they are."""
        command = np.zeros(self.ACTION_DIM)
        for index, arm in enumerate(self.arms.values()):
            speed = float(np.linalg.norm(arm.velocity))
            decel = HOLD_DECEL
            if arm.nut is not None and arm.nut.state == "held":  # an edge-gripped nut stays put
                decel = min(decel, 0.8 * MAX_ACCEL_CARRYING * arm.grip_quality)
            if speed > 0:
                command[5 * index: 5 * index + 3] = arm.velocity * max(0.0, 1.0 - decel * DT / speed)
            command[5 * index + 3] = arm.grip_command
        return self.step(command)

    def _step_arm(self, arm: Arm, command: np.ndarray) -> tuple[FailureMode, str] | None:
        velocity = np.clip(command[0:3], -MAX_SPEED, MAX_SPEED)
        speed = float(np.linalg.norm(velocity))
        if speed > MAX_SPEED:
            velocity *= MAX_SPEED / speed
        accel = float(np.linalg.norm(velocity - arm.velocity)) / DT
        spin = float(np.clip(command[4], 0.0, MAX_SPIN))
        arm.grip_command = 1.0 if command[3] > 0 else -1.0

        nut = arm.nut
        if nut is not None and nut.state == "threading":
            # The nut holds the gripper on the hole's axis: sideways pushes load the thread.
            # The wrist is compliant: a brief nudge springs back, a sustained push cross-threads.
            arm.side_load = arm.side_load * (1.0 - DT / SIDE_LOAD_TAU_S) + float(np.linalg.norm(velocity[:2])) * DT
            if arm.side_load > SIDE_LOAD_LIMIT_M:
                return "cross_threaded", f"pushed {arm.side_load * 1000:.1f} mm sideways while threading"
            velocity = np.array([0.0, 0.0, min(0.0, velocity[2])])
            arm.spin = spin
            arm.revs += spin * DT
            depth_revs = min(arm.revs, SEAT_REVS)
            nut.position[2] = PART_TOP_Z - depth_revs * THREAD_PITCH_M
            arm.position[2] = CONTACT_Z - depth_revs * THREAD_PITCH_M
            over = max(0.0, arm.revs - SEAT_REVS)
            stiffness = self.seat_stiffness[arm.side][arm.installed]
            arm.torque = RUNNING_TORQUE_NM * self.friction * (1.0 if spin > 0 else 0.3) + stiffness * over
            if arm.torque > TORQUE_MAX_NM:
                return "over_torque", f"{arm.torque:.1f} N·m stripped the thread"
            if arm.torque > TORQUE_FAULT_NM:
                self.fault, self.fault_detail = "torque_out_of_range", f"{arm.side} driver at {arm.torque:.1f} N·m"
        else:
            arm.spin = spin
            arm.torque = 0.0
            if nut is not None and nut.state == "held" and accel > MAX_ACCEL_CARRYING * arm.grip_quality:
                return "dropped_nut", f"jerked at {accel:.1f} m/s² while carrying a nut gripped {arm.grip_quality:.0%} well"
            new_position = arm.position + velocity * DT
            new_position[2] = max(new_position[2], self._floor(arm, new_position))
            if nut is not None and nut.state == "held" and new_position[2] <= CONTACT_Z + 1e-9 and self._over_part(new_position):
                failure = self._engage(arm, new_position, velocity)
                if failure is not None:
                    return failure
            arm.position = new_position
            if nut is not None and nut.state == "held":
                nut.position = arm.position + np.array([arm.nut_offset[0], arm.nut_offset[1], -0.004])
        arm.velocity = velocity

        # Gripper: closing or opening takes GRIP_STEPS periods; the nut follows the jaws.
        previous = arm.grip
        arm.grip = float(np.clip(arm.grip + arm.grip_command / GRIP_STEPS, 0.0, 1.0))
        if previous < 1.0 <= arm.grip and arm.nut is None:
            return self._grasp(arm)
        if previous > 0.0 >= arm.grip and arm.nut is not None:
            return self._release(arm)
        return None

    def _floor(self, arm: Arm, position: np.ndarray) -> float:
        """Lowest the gripper can go here (the part's top, the feeder's nut, the table)."""
        if self._over_part(position):
            return CONTACT_Z if arm.nut is not None else PART_TOP_Z
        return NUT_ON_FEEDER_Z + (0.004 if arm.nut is not None else 0.0)

    def _over_part(self, position: np.ndarray) -> bool:
        local = position[:2] - self.part_centre
        return abs(local[0]) < 0.20 and abs(local[1]) < 0.09

    def _engage(self, arm: Arm, position: np.ndarray, velocity: np.ndarray) -> tuple[FailureMode, str] | None:
        hole = self.target_hole(arm.side)
        assert hole is not None and arm.nut is not None
        error = float(np.linalg.norm(position[:2] + arm.nut_offset - hole))
        if error > HOLE_TOLERANCE_M:
            return "misaligned_nut", f"nut met the part {error * 1000:.1f} mm off the hole"
        if velocity[2] < -MAX_CONTACT_SPEED:
            return "cross_threaded", f"nut met the hole at {-velocity[2] * 1000:.0f} mm/s"
        side_speed = float(np.linalg.norm(velocity[:2]))
        if side_speed > MAX_CONTACT_SIDE_SPEED:
            return "cross_threaded", f"nut met the hole moving sideways at {side_speed * 1000:.0f} mm/s"
        arm.nut.state = "threading"
        arm.nut.position = np.array([hole[0], hole[1], PART_TOP_Z])
        position[:2] = hole - arm.nut_offset  # the thread holds the nut; the gripper stays where it is on it
        position[2] = CONTACT_Z
        arm.revs = 0.0
        arm.side_load = 0.0
        return None

    def _grasp(self, arm: Arm) -> tuple[FailureMode, str] | None:
        nut = arm.feeder_nut
        if nut is None or nut.state != "feeder":
            return "missed_pick", "closed with no nut to pick"
        error = float(np.linalg.norm(arm.position[:2] - nut.position[:2]))
        height = abs(arm.position[2] - nut.position[2])
        if error > PICK_TOLERANCE_M or height > PICK_HEIGHT_TOLERANCE_M:
            nut.state = "lost"
            return "missed_pick", f"closed {error * 1000:.1f} mm off the nut, {height * 1000:.1f} mm above it"
        nut.state = "held"
        arm.nut = nut
        arm.nut_offset = (nut.position[:2] - arm.position[:2]) * (1.0 - JAW_CENTRING)
        arm.grip_quality = 1.0 - (error / PICK_TOLERANCE_M) ** 2
        nut.position = arm.position + np.array([arm.nut_offset[0], arm.nut_offset[1], -0.004])
        arm.feeder_nut = None
        return None

    def _release(self, arm: Arm) -> tuple[FailureMode, str] | None:
        nut = arm.nut
        assert nut is not None
        arm.nut = None
        if nut.state == "held":
            nut.state = "lost"
            return "dropped_nut", "opened the gripper before the nut was threaded"
        if arm.revs < SEAT_REVS or arm.torque < TORQUE_MIN_NM:
            return "under_torque", f"released at {arm.revs:.1f} of {SEAT_REVS:.0f} turns, {arm.torque:.1f} N·m"
        nut.state = "installed"
        arm.installed += 1
        arm.nut_offset = np.zeros(2)
        arm.grip_quality = 1.0
        self.installed_nuts.append(nut)
        arm.revs = 0.0
        arm.torque = 0.0
        arm.spin = 0.0
        if not arm.done:
            arm.feeder_nut = self._present_nut(arm.side)
        return None

    # ------------------------------------------------------------------ what sensors report

    def state_vector(self) -> np.ndarray:
        """Proprioception: per arm position (3), velocity (3), grip, torque/10, nuts installed; then time/takt."""
        values: list[float] = []
        for side in ARMS:
            arm = self.arms[side]
            values += [*arm.position, *arm.velocity, arm.grip, arm.torque / 10.0, float(arm.installed)]
        values.append(self.t / TAKT_S)
        return np.asarray(values, dtype=np.float32)

    def progress(self) -> float:
        done = sum(arm.installed for arm in self.arms.values())
        partial = sum(min(arm.revs / SEAT_REVS, 1.0) * 0.5 + (0.2 if arm.nut is not None else 0.0) for arm in self.arms.values())
        return float(min(1.0, (done + 0.3 * partial) / (NUTS_PER_ARM * len(ARMS))))

    def phase(self) -> str:
        phases = []
        for side in ARMS:
            arm = self.arms[side]
            if arm.done:
                phases.append("done")
            elif arm.nut is not None and arm.nut.state == "threading":
                phases.append("drive")
            elif arm.nut is not None:
                phases.append("align")
            else:
                phases.append("pick")
        return f"nut {sum(a.installed for a in self.arms.values()) + 1}/{NUTS_PER_ARM * 2}: L {phases[0]}, R {phases[1]}"
