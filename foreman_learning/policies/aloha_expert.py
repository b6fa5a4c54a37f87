"""A scripted expert for gym-aloha's bimanual insertion, of Foreman's own.

It reads the simulator's ground truth (where the peg and the socket lie), plans each gripper's
pose along timed waypoints (above the part, down, close, to the meeting point, in), as the ACT
paper's scripted policies do with their end-effector simulation, and turns those poses into
gym-aloha's joint targets by damped least-squares inverse kinematics on its own copy of the MuJoCo
model. Only a simulator can give it what it reads: it is the ALOHA robot's expert, for
demonstrations and for scoring, never a product decision.

Timing (steps of 20 ms that moved the arms since the cycle began, `observation["ground_truth"]["step"]`):
above the parts at 2 s, closed on them at 3.7 s, at the meeting point at 5.8 s, then the peg goes in
steered by where it is against the socket, typically by 8 s. A cycle that a person took over and
handed back resumes on that clock from where the grippers are.

Measured: `python -m foreman_learning.aloha_eval --policy expert` (docs/robots.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from foreman_learning.policies.base import PolicyOutput

SIDES = ("left", "right")
DOFS_PER_ARM = 8
CHUNK = 25  # actions per inference (0.5 s)
IK_ITERATIONS = 10
IK_DAMPING = 0.02
MAX_IK_STEP = 0.2  # rad per iteration
# The point between the fingertips, in the gripper link's frame (fingers at x = 0.0687, their pads ~3 cm on).
PINCH_OFFSET = np.array([0.10, 0.0, 0.0])
MEET = np.array([0.0, 0.5, 0.25])  # where the two parts meet, above the table's centre
PICK_TILT_DEG = 60.0  # the fingers come down on a part at this angle below horizontal
# Insertion, from step 300: the peg's tip is lined up with the socket's axis at a stand-off, then
# pushed in while it stays lined up. Peg and socket are 12 cm long; the pin inside the socket ends
# 4 cm from its centre, and the peg's tip touching it is the task's success.
INSERT_FROM = 300
PEG_HALF_LENGTH_M = 0.06
PEG_STANDOFF_M, PEG_END_M = 0.12, 0.02  # the tip's distance from the socket's centre: where it lines up, how deep it goes
ALIGNED_M = 0.006  # the tip this close to the socket's axis: push in
INSERT_SPEED_M_S = 0.08
INSERT_BLEND = 30  # steps over which steering on the parts takes over from the planned path


@dataclass(frozen=True)
class Waypoint:
    step: int
    position: np.ndarray  # the pinch point, world frame (m)
    tilted: bool  # False: the gripper's start orientation; True: tilted down to pick
    grip: float  # gym-aloha's normalized gripper command: 0 closed, 1 open


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2])


def _axis_angle(axis: np.ndarray, degrees: float) -> np.ndarray:
    half = np.radians(degrees) / 2
    return np.concatenate([[np.cos(half)], np.sin(half) * axis / np.linalg.norm(axis)])


def _slerp(a: np.ndarray, b: np.ndarray, fraction: float) -> np.ndarray:
    if np.dot(a, b) < 0:
        b = -b
    blended = (1 - fraction) * a + fraction * b  # normalized lerp: close enough for waypoints this near
    return blended / np.linalg.norm(blended)


class AlohaExpert:
    version = "aloha-expert-v1"
    supports_prefix = False
    needs_ground_truth = True

    def __init__(self, task: str = "insertion") -> None:
        import mujoco
        from gym_aloha.constants import ASSETS_DIR, START_ARM_POSE

        if task != "insertion":
            raise ValueError(f"the ALOHA expert plans the insertion task, not {task!r}")
        self.mujoco = mujoco
        self.model = mujoco.MjModel.from_xml_path(str(ASSETS_DIR / "bimanual_viperx_insertion.xml"))
        self.data = mujoco.MjData(self.model)
        self.bodies = [self.model.body(f"vx300s_{side}/gripper_link").id for side in SIDES]
        self.low = self.model.actuator_ctrlrange[:, 0]
        self.high = self.model.actuator_ctrlrange[:, 1]
        self.data.qpos[:16] = START_ARM_POSE
        mujoco.mj_kinematics(self.model, self.data)
        self.start_pinch = [self._pinch(index) for index in range(2)]
        self.start_quat = [self.data.xquat[body].copy() for body in self.bodies]
        self.pick_quat = [self._tilted(index) for index in range(2)]
        self.parts: tuple[np.ndarray, np.ndarray] | None = None  # where the socket and the peg lay when planned
        self.last_step = -1
        self.commanded: dict[int, np.ndarray] = {}  # the last chunk, by cycle step

    def _pinch(self, index: int) -> np.ndarray:
        body = self.bodies[index]
        return self.data.xpos[body] + self.data.xmat[body].reshape(3, 3) @ PINCH_OFFSET

    def _tilted(self, index: int) -> np.ndarray:
        """The start orientation turned about the gripper's own y axis until its fingers point down."""
        start = self.start_quat[index]
        for sign in (1.0, -1.0):
            quat = _quat_mul(start, _axis_angle(np.array([0.0, 1.0, 0.0]), sign * PICK_TILT_DEG))
            rotation = np.zeros(9)
            self.mujoco.mju_quat2Mat(rotation, quat)
            if rotation.reshape(3, 3)[2, 0] < 0:  # the gripper's x axis (its fingers) points down
                return quat
        raise AssertionError("no tilt points the fingers down")

    def _axis(self, quat: np.ndarray) -> np.ndarray:
        """A part's long axis (its x), pointing +x: the way the socket opens toward the peg."""
        rotation = np.zeros(9)
        self.mujoco.mju_quat2Mat(rotation, quat)
        axis = rotation.reshape(3, 3)[:, 0]
        return axis if axis[0] >= 0 else -axis

    def plan(self, socket: np.ndarray, peg: np.ndarray) -> list[list[Waypoint]]:
        """Each arm's waypoints: the left arm takes the socket, the right arm the peg."""
        up = np.array([0.0, 0.0, 0.08])
        down = np.array([0.0, 0.0, 0.0])
        waypoints = []
        for index, (part, side_sign) in enumerate(((socket, -1.0), (peg, 1.0))):
            waypoints.append([
                Waypoint(0, self.start_pinch[index], False, 0.0),
                Waypoint(100, part + up, True, 1.0),
                Waypoint(150, part + down, True, 1.0),
                Waypoint(185, part + down, True, 0.0),
                Waypoint(220, part + up, True, 0.0),
                Waypoint(290, MEET + np.array([side_sign * 0.12, 0.0, 0.0]), True, 0.0),
                Waypoint(340, MEET + np.array([side_sign * 0.06, 0.0, 0.0]), True, 0.0),
                Waypoint(400, MEET + np.array([side_sign * 0.04, 0.0, 0.0]), True, 0.0),
            ])
        return waypoints

    def _target(self, waypoints: list[Waypoint], index: int, step: int) -> tuple[np.ndarray, np.ndarray, float]:
        quat_of = lambda waypoint: self.pick_quat[index] if waypoint.tilted else self.start_quat[index]  # noqa: E731
        if step >= waypoints[-1].step:
            last = waypoints[-1]
            return last.position, quat_of(last), last.grip
        for before, after in zip(waypoints, waypoints[1:], strict=False):
            if before.step <= step < after.step:
                fraction = (step - before.step) / (after.step - before.step)
                return ((1 - fraction) * before.position + fraction * after.position,
                        _slerp(quat_of(before), quat_of(after), fraction), (1 - fraction) * before.grip + fraction * after.grip)
        raise AssertionError("waypoints start at step 0")

    def _solve(self, index: int, position: np.ndarray, quat: np.ndarray, seed: np.ndarray) -> np.ndarray:
        """Joint targets (6) that put arm `index`'s pinch point at `position` with orientation `quat`."""
        mujoco = self.mujoco
        columns = slice(DOFS_PER_ARM * index, DOFS_PER_ARM * index + 6)
        joints = seed.copy()
        jacp, jacr = np.zeros((3, self.model.nv)), np.zeros((3, self.model.nv))
        rotation_error = np.zeros(3)
        for _ in range(IK_ITERATIONS):
            self.data.qpos[columns] = joints
            mujoco.mj_kinematics(self.model, self.data)
            mujoco.mj_comPos(self.model, self.data)
            pinch = self._pinch(index)
            # mju_subQuat's difference is in the gripper's own frame; the Jacobian's rows are in the world's.
            mujoco.mju_subQuat(rotation_error, quat, self.data.xquat[self.bodies[index]])
            world_rotation_error = self.data.xmat[self.bodies[index]].reshape(3, 3) @ rotation_error
            error = np.concatenate([position - pinch, world_rotation_error])
            if np.linalg.norm(error[:3]) < 1e-4 and np.linalg.norm(error[3:]) < 1e-3:
                break
            mujoco.mj_jac(self.model, self.data, jacp, jacr, pinch, self.bodies[index])
            jacobian = np.vstack([jacp[:, columns], jacr[:, columns]])
            step = jacobian.T @ np.linalg.solve(jacobian @ jacobian.T + IK_DAMPING ** 2 * np.eye(6), error)
            step = np.clip(step, -MAX_IK_STEP, MAX_IK_STEP)  # small steps: the arm never jumps to another solution
            joints = np.clip(joints + step, self.low[columns], self.high[columns])
        return joints

    def infer(self, observation: dict[str, Any], prefix: np.ndarray | None = None) -> PolicyOutput:
        truth = observation["ground_truth"]
        qpos = np.asarray(truth["qpos"], dtype=np.float64)
        step = int(truth["step"])
        if step < self.last_step or self.parts is None:
            self.parts = None  # a new cycle: plan on where its parts lie
            self.commanded = {}
        self.last_step = step
        if self.parts is None or step < 185:  # until the grippers close, follow the parts where they lie
            self.parts = (qpos[23:26].copy(), qpos[16:19].copy())
        waypoints = self.plan(*self.parts)
        self.data.qpos[:] = qpos
        self.mujoco.mj_kinematics(self.model, self.data)
        # Once both parts are up, the peg is steered by where it is against the socket (closed loop on
        # the ground truth), not by where the grippers are: a grasp is never exactly centred.
        peg_pinch_offset = self._pinch(1) - qpos[16:19]
        # The peg's tip, not its centre, has to enter: a peg held at a slant has its tip off its centre's line.
        socket_axis, peg_axis = self._axis(qpos[26:30]), self._axis(qpos[19:23])
        tip_to_centre = PEG_HALF_LENGTH_M * peg_axis
        apart = qpos[16:19] - tip_to_centre - qpos[23:26]
        along_now = float(apart @ socket_axis)
        aligned = bool(np.linalg.norm(apart - along_now * socket_axis) < ALIGNED_M)
        # Inverse kinematics continues from the joints this expert last commanded: the wrist joints are
        # soft (gains 10 and 20) and lag their targets, and seeding from where they are drifts the
        # solution from one chunk to the next onto the wrist's limits.
        commanded = self.commanded.get(step - 1)
        seeds = [(commanded[7 * index: 7 * index + 6] if commanded is not None else qpos[DOFS_PER_ARM * index: DOFS_PER_ARM * index + 6]).copy()
                 for index in range(2)]
        actions = np.zeros((CHUNK, 14))
        for k in range(CHUNK):
            for index in range(2):
                position, quat, grip = self._target(waypoints[index], index, step + k)
                if index == 1 and step + k >= INSERT_FROM:
                    # Line up at the stand-off first; push in only while lined up (a peg pushed askew
                    # wrenches the socket out of the other hand).
                    along = min(along_now, PEG_STANDOFF_M)
                    if aligned:
                        along = max(PEG_END_M, along - INSERT_SPEED_M_S * (k + 1) / 50.0)
                    steered = qpos[23:26] + along * socket_axis + tip_to_centre + peg_pinch_offset
                    weight = min(1.0, (step + k - INSERT_FROM) / INSERT_BLEND)  # no jump where steering begins
                    position = (1 - weight) * position + weight * steered
                seeds[index] = self._solve(index, position, quat, seeds[index])
                actions[k, 7 * index: 7 * index + 6] = seeds[index]
                actions[k, 7 * index + 6] = grip
        self.commanded = {step + k: actions[k] for k in range(CHUNK)}
        return PolicyOutput(actions, 1.0)
