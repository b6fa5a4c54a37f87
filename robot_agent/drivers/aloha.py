"""ALOHA on MuJoCo: gym-aloha's bimanual ViperX tasks (the ACT paper's simulated ALOHA) as a robot.

`--robot gym:gym_aloha/AlohaInsertion-v0`: two 6-joint arms with parallel grippers pick a socket
(left arm) and a peg (right arm) and insert the peg, the closest public analogue of the nut
station's two-sided work, on a real physics engine, in a model that nobody here wrote.
`gym_aloha/AlohaTransferCube-v0` (one arm hands a cube to the other) runs the same way.

Actions are gym-aloha's: absolute joint targets per arm (6 joints, then the gripper normalized
0 closed .. 1 open), at the task's native 50 Hz. State: those 14 positions and their 14 velocities.

Cost (measured here, MUJOCO_GL=egl, software GL on 2 cores): one control period of physics (10 MuJoCo
steps of 2 ms and the task's contact scan) 0.35 ms; one rendered 640x480 frame 20 ms with shadows
off (60 ms with them, for no visible gain at this size), 15 ms at 320x240. gym-aloha's own
`env.step` renders three 640x480 cameras every step (150 ms, a 50 Hz loop is impossible), so this
driver steps the physics itself and renders only the frames the agent's cameras and the policy ask
for, each from a copy of the state, on one render thread: the control loop never waits for a frame.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; read when mujoco first loads

import logging
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from foreman_learning.policies.base import Policy
from foreman_protocol.messages import FailureModeSpec, TeleopSpec
from robot_agent.modes import TeleopVelocity
from robot_agent.robot import Feature, Robot, Simulation, StationStatus

log = logging.getLogger(__name__)

SIDES = ("left", "right")
ARM_JOINTS = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")
# What each reward level of gym-aloha's tasks means (tasks/sim.py get_reward): the phases reported.
PHASES = {
    "insertion": ("reach", "grasp", "lift", "insert", "inserted"),
    "transfer_cube": ("reach", "grasp", "lift", "hand_over", "transferred"),
}
# How each task fails, for the labelers (a part off the table is the one the driver sees itself).
FAILURE_MODES = {
    "insertion": (("missed_grasp", "Missed grasp"), ("dropped_part", "Dropped peg or socket"),
                  ("misaligned_insertion", "Peg missed the socket"), ("parts_collided", "Parts knocked away")),
    "transfer_cube": (("missed_grasp", "Missed grasp"), ("dropped_part", "Dropped cube"), ("failed_handover", "Failed hand-over")),
}
# Each task's loose parts: (free joint in the model, what a person calls it).
PARTS = {"insertion": (("red_peg_joint", "peg"), ("blue_socket_joint", "socket")), "transfer_cube": (("red_box_joint", "cube"),)}
DOFS_PER_ARM = 8  # 6 arm joints and 2 finger joints, in qpos and qvel alike
POLICY_IMAGE_SIZE = (160, 120)  # (width, height) of the images an observation carries
PHASE_HOLD_STEPS = 10  # 0.2 s
TELEOP_DAMPING = 0.05  # damped least squares: the arm slows near a singularity instead of flailing


def is_aloha_env(env_id: str) -> bool:
    return env_id.startswith("gym_aloha/")


class MujocoRenderer:
    """MuJoCo's offscreen renderer on one thread of its own (a GL context is current on one thread),
    drawing a copy of the simulation's positions so the physics never waits for it."""

    def __init__(self, model: Any) -> None:
        import mujoco

        self.mujoco = mujoco
        self.model = model
        self.data = mujoco.MjData(model)  # touched only on the render thread
        self.max_size = (int(model.vis.global_.offwidth), int(model.vis.global_.offheight))
        self.renderers: dict[tuple[int, int], Any] = {}
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mujoco-render")
        self.closed = False

    def render(self, qpos: np.ndarray, camera: str, size: tuple[int, int]) -> np.ndarray:
        return self.pool.submit(self._render, qpos, camera, size).result()

    def _render(self, qpos: np.ndarray, camera: str, size: tuple[int, int]) -> np.ndarray:
        mujoco = self.mujoco
        width, height = min(size[0], self.max_size[0]), min(size[1], self.max_size[1])
        renderer = self.renderers.get((width, height))
        if renderer is None:
            renderer = self.renderers[(width, height)] = mujoco.Renderer(self.model, height=height, width=width)
        self.data.qpos[:] = qpos
        mujoco.mj_forward(self.model, self.data)
        renderer.update_scene(self.data, camera=camera)
        # Shadows cost two thirds of a software-rendered frame here; reflections and the skybox are not seen.
        for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION, mujoco.mjtRndFlag.mjRND_SKYBOX):
            renderer.scene.flags[flag] = False
        return np.asarray(renderer.render())

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True

        def free() -> None:
            for renderer in self.renderers.values():
                renderer.close()
            self.renderers.clear()

        self.pool.submit(free).result()
        self.pool.shutdown()


class LazyImages(Mapping[str, np.ndarray]):
    """An observation's camera images, drawn when a policy first reads one (most of an ALOHA policy's
    cost would otherwise be frames it never looks at), from the positions the observation was taken at."""

    def __init__(self, renderer: MujocoRenderer, qpos: np.ndarray, cameras: list[str], size: tuple[int, int]) -> None:
        self.renderer = renderer
        self.qpos = qpos
        self.cameras = cameras
        self.size = size
        self.drawn: dict[str, np.ndarray] = {}

    def __getitem__(self, camera: str) -> np.ndarray:
        if camera not in self.cameras:
            raise KeyError(camera)
        if camera not in self.drawn:
            self.drawn[camera] = self.renderer.render(self.qpos, camera, self.size)
        return self.drawn[camera]

    def __iter__(self) -> Iterator[str]:
        return iter(self.cameras)

    def __len__(self) -> int:
        return len(self.cameras)


class AlohaRobot(Robot, Simulation):
    robot_type = "aloha"  # as LeRobot's own ALOHA datasets name it
    simulated = True
    control_hz = 50.0
    cameras = ["top", "left_wrist", "right_wrist"]
    # What the renderer can afford next to the physics and the video encoders (bench control):
    # the overview camera at 15 fps, the wrist cameras at 5.
    camera_fps = {"top": 15.0, "left_wrist": 5.0, "right_wrist": 5.0}
    teleop = TeleopSpec(space="end_effector", arms=list(SIDES), spin="turn the wrist", grip=True)
    # phases and failure_modes: the task's, set in __init__

    def __init__(self, env_id: str = "gym_aloha/AlohaInsertion-v0", control_hz: float | None = None) -> None:
        import gym_aloha  # noqa: F401 - registers the gym_aloha/ environments
        import gymnasium
        from dm_control.rl.control import PhysicsError
        from gym_aloha.constants import DT, normalize_puppet_gripper_position

        if control_hz is not None and abs(control_hz * DT - 1.0) > 1e-6:
            raise ValueError(f"{env_id} runs at {1 / DT:.0f} Hz (asked for {control_hz:g} Hz)")
        self.env_id = env_id
        self.name = env_id.split("/", 1)[1]
        self.env = gymnasium.make(env_id)
        aloha = self.env.unwrapped
        self.task_name: str = aloha.task  # type: ignore[attr-defined]
        if self.task_name not in PHASES:
            raise ValueError(f"{env_id}: gym-aloha task {self.task_name!r} is not one this driver knows ({', '.join(PHASES)})")
        self.phases = PHASES[self.task_name]
        self.failure_modes = tuple(FailureModeSpec(key=key, label=label) for key, label in FAILURE_MODES[self.task_name])
        control = aloha._env  # type: ignore[attr-defined] # dm_control's Environment: its physics and task
        self.physics = control.physics
        self.task = control.task
        self.substeps = int(control._n_sub_steps)
        self.physics_error = PhysicsError
        self.normalize_gripper = normalize_puppet_gripper_position
        self.lock = threading.Lock()
        self.ground_truth = False
        model = self.physics.model.ptr
        self.model = model
        self.data = self.physics.data.ptr
        self.renderer = MujocoRenderer(model)
        self.gripper_bodies = [model.body(f"vx300s_{side}/gripper_link").id for side in SIDES]
        self.part_qpos = [(int(model.joint(joint).qposadr[0]), label) for joint, label in PARTS[self.task_name]]
        ranges = model.actuator_ctrlrange
        self.state_features = tuple(
            feature for suffix, unit, grip_unit in ((".pos", "rad", "0 closed..1 open"), (".vel", "rad/s", "1/s"))
            for side in SIDES
            for feature in (*(Feature(f"{side}.{joint}{suffix}", unit) for joint in ARM_JOINTS), Feature(f"{side}.gripper{suffix}", grip_unit))
        )
        self.action_features = tuple(
            feature for index, side in enumerate(SIDES)
            for feature in (
                *(Feature(f"{side}.{joint}", "rad", float(ranges[DOFS_PER_ARM * index + j][0]), float(ranges[DOFS_PER_ARM * index + j][1]))
                  for j, joint in enumerate(ARM_JOINTS)),
                Feature(f"{side}.gripper", "0 closed..1 open", 0.0, 1.0),
            )
        )
        self.action_dim = len(self.action_features)
        self.target = np.zeros(self.action_dim)  # the joint targets last applied
        self.holding = False
        self.steps = 0
        self.reward = self.phase_reward = self.reward_run = 0
        self.last_good_state = self.physics.get_state()

    # ------------------------------------------------------------------ state

    def _qpos14(self) -> np.ndarray:
        """Arm joints and normalized grippers, gym-aloha's `qpos` observation (and action layout)."""
        qpos = self.data.qpos
        return np.array([
            value for index in range(2)
            for value in (*qpos[DOFS_PER_ARM * index: DOFS_PER_ARM * index + 6], self.normalize_gripper(qpos[DOFS_PER_ARM * index + 6]))
        ])

    def _qvel14(self) -> np.ndarray:
        qvel = self.data.qvel
        span = 0.058 - 0.01844  # gym-aloha's puppet gripper open - close, for a normalized velocity
        return np.array([
            value for index in range(2)
            for value in (*qvel[DOFS_PER_ARM * index: DOFS_PER_ARM * index + 6], qvel[DOFS_PER_ARM * index + 6] / span)
        ])

    def _status(self) -> StationStatus:
        phases = PHASES[self.task_name]
        success = self.reward >= len(phases) - 1
        # Progress is where the cycle is now: a grasp lost goes back to reach, and so does progress.
        progress = self.phase_reward / (len(phases) - 1)
        dropped = [label for address, label in self.part_qpos if self.data.qpos[address + 2] < -0.05]  # below the table top
        if dropped:
            return StationStatus(phase=phases[self.phase_reward], progress=progress, done=True, success=False,
                                 failure_mode="dropped_part", fault_detail=f"the {dropped[0]} fell off the table")
        return StationStatus(phase=phases[self.phase_reward], progress=progress, done=success, success=True if success else None)

    # ------------------------------------------------------------------ Robot

    def reset(self, seed: int) -> StationStatus:
        from gym_aloha.tasks.sim import BOX_POSE
        from gym_aloha.utils import sample_box_pose, sample_insertion_pose

        with self.lock:
            # gym-aloha's own reset (AlohaEnv.reset) without its three rendered cameras.
            BOX_POSE[0] = np.concatenate(sample_insertion_pose(seed)) if self.task_name == "insertion" else sample_box_pose(seed)
            self.task.random.seed(seed)
            with self.physics.reset_context():
                self.task.initialize_episode(self.physics)
            self.target = self._qpos14()
            self.last_good_state = self.physics.get_state()
            self.holding = False
            self.steps = 0  # control periods that moved the arms this cycle (holds do not count)
            self.reward = self.phase_reward = self.reward_run = 0
            return self._status()

    def observation(self) -> dict[str, Any]:
        with self.lock:
            qpos = self.data.qpos.copy()
            observation: dict[str, Any] = {
                "state": np.concatenate([self._qpos14(), self._qvel14()]),
                "images": LazyImages(self.renderer, qpos, self.cameras, POLICY_IMAGE_SIZE),
            }
            if self.ground_truth:
                observation["ground_truth"] = {"qpos": qpos, "step": self.steps}
            return observation

    def state(self) -> np.ndarray:
        with self.lock:
            return np.concatenate([self._qpos14(), self._qvel14()])

    def step(self, action: np.ndarray) -> StationStatus:
        with self.lock:
            self._advance(np.asarray(action, dtype=np.float64))
            self.holding = False
            self.steps += 1
            return self._status()

    def hold(self) -> StationStatus:
        """Position control holds where the arms are (latched once, so they do not sag tick by tick);
        the grippers keep their command, so a held part stays held."""
        with self.lock:
            if not self.holding:
                measured = self._qpos14()
                for index in range(2):
                    self.target[7 * index: 7 * index + 6] = measured[7 * index: 7 * index + 6]
                self.holding = True
            self._advance(self.target.copy())
            return self._status()

    def _advance(self, action: np.ndarray) -> None:
        """One control period. A MuJoCo error (a diverging simulation) puts the simulation back where
        the last good period left it, at rest, and raises: the control loop faults and holds, the agent
        stays up."""
        try:
            self.task.before_step(action, self.physics)
            self.physics.step(self.substeps)
            self.task.after_step(self.physics)
            reward = int(self.task.get_reward(self.physics))
            # Contacts flicker from one period to the next: a phase changes when its reward has held
            # PHASE_HOLD_STEPS periods (success counts at once: the task's own definition).
            self.reward_run = self.reward_run + 1 if reward == self.reward else 1
            self.reward = reward
            if self.reward_run >= PHASE_HOLD_STEPS or reward == len(PHASES[self.task_name]) - 1:
                self.phase_reward = reward
        except self.physics_error as error:
            with self.physics.reset_context():
                self.physics.set_state(self.last_good_state)
                self.data.qvel[:] = 0.0
            raise RuntimeError(f"MuJoCo: {error}") from None
        self.target = action
        self.last_good_state = self.physics.get_state()

    def applied_action(self) -> np.ndarray | None:
        with self.lock:
            return self.target.copy()

    def arm_poses(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            poses = {}
            for index, side in enumerate(SIDES):
                x, y, z = (float(v) * 1000 for v in self.data.xpos[self.gripper_bodies[index]])
                # ArmPose.grip is how closed the gripper is told to be (1 closed); gym-aloha's command is how open.
                closed = 1.0 - float(self.target[7 * index + 6])
                poses[side] = {"x_mm": round(x, 1), "y_mm": round(y, 1), "z_mm": round(z, 1),
                               "grip": round(min(1.0, max(0.0, closed)), 2), "holding": self.reward >= 2}
            return poses

    def observe_ground_truth(self, enabled: bool) -> None:
        self.ground_truth = enabled

    def expert_policy(self) -> Policy:
        from foreman_learning.policies.aloha_expert import AlohaExpert

        return AlohaExpert(self.task_name)

    def default_policy(self) -> Policy:
        """The scripted expert, until a policy trained on its demonstrations ships."""
        return self.expert_policy()

    def capture(self, camera: str, size: tuple[int, int]) -> np.ndarray:
        with self.lock:
            qpos = self.data.qpos.copy()
        return self.renderer.render(qpos, camera, size)

    def teleop_action(self, command: TeleopVelocity) -> np.ndarray:
        """End-effector jog: the commanded gripper moves at (vx, vy, vz) m/s in the world frame, its
        orientation held, through the arm's Jacobian (damped least squares); `spin` turns the wrist
        (rad/s). The other arm keeps its targets."""
        import mujoco

        with self.lock:
            index = SIDES.index(command.arm)
            action = self.target.copy()
            jacp, jacr = np.zeros((3, self.model.nv)), np.zeros((3, self.model.nv))
            mujoco.mj_jacBody(self.model, self.data, jacp, jacr, self.gripper_bodies[index])
            columns = slice(DOFS_PER_ARM * index, DOFS_PER_ARM * index + 6)
            jacobian = np.vstack([jacp[:, columns], jacr[:, columns]])
            twist = np.array([command.vx, command.vy, command.vz, 0.0, 0.0, 0.0])
            joint_velocity = jacobian.T @ np.linalg.solve(jacobian @ jacobian.T + TELEOP_DAMPING ** 2 * np.eye(6), twist)
            joint_velocity[5] += command.spin
            action[7 * index: 7 * index + 6] += joint_velocity / self.control_hz
            if command.grip is not None:
                action[7 * index + 6] = 0.0 if command.grip == "close" else 1.0
            return action

    def close(self) -> None:
        self.renderer.close()
        self.env.close()
