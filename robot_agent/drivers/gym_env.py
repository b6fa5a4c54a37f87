"""Any Gymnasium environment driven as a robot: `--robot gym:ENV_ID`.

What the environment's spaces say becomes the robot's declaration: its Box action space the action
features (`action.0`, ... with the space's bounds as limits), the 1-D Box parts of its observation
the state features, and the image parts (H x W x 3 uint8) its cameras; an environment with no image
in its observation but an `rgb_array` render shows that as its camera `render`. A cycle is an
episode: it ends when the environment says terminated or truncated, a success when `info["is_success"]`
says so (else when terminated, not truncated).

A person drives it by joint jog: the teleop axes (vx, vy, vz, spin) of the left "arm" move action
features 0-3, of the right "arm" 4-7, by the axis value per second from the last action sent. A
hold does not step the environment: a simulation that is not stepped does not move.

Environments that need more than this (gym-aloha renders three cameras in every step) get a driver
of their own (robot_agent/drivers/aloha.py), chosen by `make_robot`.
"""

from __future__ import annotations

import threading
from typing import Any, Literal

import numpy as np

from foreman_protocol.messages import TeleopSpec
from robot_agent.modes import TeleopVelocity
from robot_agent.robot import Feature, Robot, StationStatus

TELEOP_AXES = 4  # vx, vy, vz, spin


def is_image_space(space: Any) -> bool:
    shape = getattr(space, "shape", None)
    return shape is not None and len(shape) == 3 and shape[2] == 3 and getattr(space, "dtype", None) == np.uint8


def bound(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def resize_nearest(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`image` at `size` (width, height), nearest neighbour: cheap, and the encoder scales anyway."""
    height, width = image.shape[:2]
    if (width, height) == size:
        return image
    rows = (np.arange(size[1]) * height // size[1]).clip(0, height - 1)
    columns = (np.arange(size[0]) * width // size[0]).clip(0, width - 1)
    return np.ascontiguousarray(image[rows][:, columns])


def frame_at(image: np.ndarray | None, size: tuple[int, int]) -> np.ndarray:
    """A camera's latest image at `size`; black before its first one."""
    if image is None:
        return np.zeros((size[1], size[0], 3), dtype=np.uint8)
    return resize_nearest(image, size)


class GymRobot(Robot):
    simulated = True

    def __init__(self, env_id: str, control_hz: float | None = None) -> None:
        import gymnasium
        from gymnasium import spaces

        try:
            self.env = gymnasium.make(env_id, render_mode="rgb_array")
        except TypeError:  # an environment that takes no render_mode
            self.env = gymnasium.make(env_id)
        self.name = env_id
        self.robot_type = env_id
        action_space = self.env.action_space
        if not isinstance(action_space, spaces.Box) or len(action_space.shape) != 1:
            raise ValueError(f"{env_id}: its action space is {action_space}; a robot needs a 1-D Box")
        self.action_features = tuple(
            Feature(f"action.{index}", "", bound(low), bound(high)) for index, (low, high) in enumerate(zip(action_space.low, action_space.high, strict=True))
        )
        self.action_dim = len(self.action_features)
        arms: list[Literal["left", "right"]] = ["left", "right"] if self.action_dim > TELEOP_AXES else ["left"]
        self.teleop = TeleopSpec(
            space="joint", arms=arms, grip=False, spin="action.3" if self.action_dim > 3 else None,
            axes=f"vx vy vz spin move action.0-{min(self.action_dim, TELEOP_AXES) - 1}"
                 + (f" (left), action.4-{min(self.action_dim, 2 * TELEOP_AXES) - 1} (right)" if len(arms) == 2 else "")
                 + " by their value per second",
        )
        self.state_keys: list[str | None] = []  # observation parts that make the state, in order (None: the whole Box)
        self.image_keys: dict[str, str | None] = {}  # camera name -> observation key (None: env.render())
        state: list[Feature] = []
        observation_space = self.env.observation_space
        parts = observation_space.spaces.items() if isinstance(observation_space, spaces.Dict) else [(None, observation_space)]
        for key, space in parts:
            if is_image_space(space):
                self.image_keys[str(key)] = key
            elif isinstance(space, spaces.Box) and len(space.shape) == 1:
                self.state_keys.append(key)
                state.extend(Feature(f"{key or 'obs'}.{index}") for index in range(space.shape[0]))
        self.state_features = tuple(state)
        if not self.image_keys and self.env.render_mode == "rgb_array":
            self.image_keys["render"] = None
        self.cameras = list(self.image_keys)
        fps = self.env.metadata.get("render_fps")
        self.control_hz = float(control_hz or (fps if isinstance(fps, int | float) and fps > 0 else 30.0))
        self.lock = threading.Lock()
        self.last_observation: Any = None
        self.last_action = np.zeros(self.action_dim)
        self.images: dict[str, np.ndarray] = {}
        self.status = StationStatus()

    def _observed(self, observation: Any) -> None:
        self.last_observation = observation
        for name, key in self.image_keys.items():
            image = self.env.render() if key is None else observation[key]
            if image is not None:
                self.images[name] = np.asarray(image, dtype=np.uint8)

    def _state_of(self, observation: Any) -> np.ndarray:
        parts = [np.asarray(observation if key is None else observation[key], dtype=np.float64).ravel() for key in self.state_keys]
        return np.concatenate(parts) if parts else np.zeros(0)

    def reset(self, seed: int) -> StationStatus:
        with self.lock:
            observation, _ = self.env.reset(seed=seed)
            self._observed(observation)
            low = np.array([-np.inf if f.low is None else f.low for f in self.action_features])
            high = np.array([np.inf if f.high is None else f.high for f in self.action_features])
            self.last_action = np.clip(np.zeros(self.action_dim), low, high)
            self.status = StationStatus(phase="running")
            return self.status

    def observation(self) -> dict[str, Any]:
        with self.lock:
            return {"state": self._state_of(self.last_observation), "images": {name: image.copy() for name, image in self.images.items()}}

    def state(self) -> np.ndarray:
        with self.lock:
            return self._state_of(self.last_observation)

    def step(self, action: np.ndarray) -> StationStatus:
        with self.lock:
            observation, _reward, terminated, truncated, info = self.env.step(np.asarray(action, dtype=self.env.action_space.dtype))
            self._observed(observation)
            self.last_action = np.asarray(action, dtype=np.float64).copy()
            done = bool(terminated or truncated)
            success = bool(info.get("is_success", terminated and not truncated)) if done else None
            self.status = StationStatus(phase="done" if done else "running", progress=1.0 if success else 0.0, done=done, success=success)
            return self.status

    def hold(self) -> StationStatus:
        return self.status

    def applied_action(self) -> np.ndarray | None:
        with self.lock:
            return self.last_action.copy()

    def capture(self, camera: str, size: tuple[int, int]) -> np.ndarray:
        with self.lock:
            image = self.images.get(camera)
        return frame_at(image, size)

    def teleop_action(self, command: TeleopVelocity) -> np.ndarray:
        with self.lock:
            action = self.last_action.copy()
        first = 0 if command.arm == "left" else TELEOP_AXES
        for offset, value in enumerate((command.vx, command.vy, command.vz, command.spin)):
            if first + offset < self.action_dim:
                action[first + offset] += value / self.control_hz
        return action

    def close(self) -> None:
        self.env.close()
