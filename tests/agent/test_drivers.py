"""The driver registry (`--robot`) and the generic Gymnasium driver, on a small environment of the tests' own."""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces

from robot_agent.config import ConfigError, load_config
from robot_agent.drivers import DriverError, make_robot
from robot_agent.drivers.gym_env import GymRobot
from robot_agent.modes import TeleopVelocity
from robot_agent.robot import declared_features
from robot_agent.sim_robot import SimRobot
from tests.agent.test_cli import run_agent


class PointMass(gymnasium.Env[dict[str, Any], np.ndarray]):
    """A point pushed on a plane toward a goal: a Box action, a position, and a camera in its observation."""

    metadata = {"render_modes": [], "render_fps": 20}

    def __init__(self) -> None:
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.observation_space = spaces.Dict({
            "position": spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float64),
            "overhead": spaces.Box(0, 255, shape=(48, 64, 3), dtype=np.uint8),
        })
        self.position = np.zeros(2)

    def _observation(self) -> dict[str, Any]:
        image = np.zeros((48, 64, 3), dtype=np.uint8)
        column, row = int(np.clip(32 + self.position[0] * 10, 0, 63)), int(np.clip(24 + self.position[1] * 10, 0, 47))
        image[row, column] = 255
        return {"position": self.position.copy(), "overhead": image}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        self.position = self.np_random.uniform(-1, 1, size=2)
        return self._observation(), {}

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        self.position = self.position + 0.05 * np.asarray(action, dtype=np.float64)
        at_goal = bool(np.linalg.norm(self.position) < 0.1)
        return self._observation(), -float(np.linalg.norm(self.position)), at_goal, False, {"is_success": at_goal}


gymnasium.register(id="foreman_tests/PointMass-v0", entry_point=f"{__name__}:PointMass", max_episode_steps=200)


def test_the_registry_builds_each_driver_and_names_the_unknown():
    assert isinstance(make_robot("sim"), SimRobot)
    assert isinstance(make_robot("gym:foreman_tests/PointMass-v0"), GymRobot)
    with pytest.raises(DriverError, match="unknown robot driver 'ros'.*sim, gym"):
        make_robot("ros:arm")
    with pytest.raises(DriverError, match="needs an environment id"):
        make_robot("gym")
    with pytest.raises(DriverError, match="Gymnasium environment 'NoSuchEnv-v0'"):
        make_robot("gym:NoSuchEnv-v0")
    with pytest.raises(DriverError, match="runs at 30 Hz"):
        make_robot("sim", control_hz=50.0)


def test_a_gym_environment_declares_what_its_spaces_say():
    robot = make_robot("gym:foreman_tests/PointMass-v0")
    assert [(f.name, f.low, f.high) for f in robot.action_features] == [("action.0", -1.0, 1.0), ("action.1", -1.0, 1.0)]
    assert [f.name for f in robot.state_features] == ["position.0", "position.1"]
    assert robot.cameras == ["overhead"] and robot.control_hz == 20.0  # its metadata's render_fps
    features = declared_features(robot, robot.control_hz)
    assert features is not None and features.control_hz == 20.0 and len(features.action) == 2
    # A person jogs its action features: one "arm", no gripper, no spin axis (2 actions).
    assert features.teleop is not None and (features.teleop.space, features.teleop.arms, features.teleop.grip, features.teleop.spin) == (
        "joint", ["left"], False, None)
    assert "action.0-1" in features.teleop.axes


def test_the_nut_station_and_aloha_declare_how_a_person_drives_them():
    sim = declared_features(make_robot("sim"), 30.0)
    assert sim is not None and sim.teleop is not None and sim.teleop.spin == "drive the nut" and sim.teleop.arms == ["left", "right"]


def test_a_gym_robot_runs_a_cycle_to_its_success_and_a_person_jogs_it():
    robot = make_robot("gym:foreman_tests/PointMass-v0")
    robot.reset(3)
    start = robot.state().copy()
    status = robot.hold()
    assert np.array_equal(robot.state(), start) and not status.done  # a hold does not step the simulation
    jogged = robot.teleop_action(TeleopVelocity("lease", 1, "left", 0.5, -0.5, 0.0, 0.0, None, 0.0))
    assert np.allclose(jogged, [0.5 / 20, -0.5 / 20])  # axis value per second, from the last action
    image = robot.capture("overhead", (128, 96))
    assert image.shape == (96, 128, 3) and image.max() == 255
    for _ in range(200):
        status = robot.step(-np.clip(robot.state() * 5, -1, 1))
        if status.done:
            break
    assert status.done and status.success is True and status.progress == 1.0


@pytest.mark.parametrize(("argv", "message"), [
    (["--sim", "--robot", "gym:foreman_tests/PointMass-v0"], "pass one of them"),
])
def test_conflicting_robot_settings_are_a_config_error(argv, message):
    with pytest.raises(ConfigError, match=message):
        load_config(["--server", "http://127.0.0.1:9", "--token", "frt_x", *argv], environ={}).validate()


@pytest.mark.parametrize(("robot", "message"), [
    ("ros:arm", "unknown robot driver 'ros'"),
    ("gym:NoSuchEnv-v0", "Gymnasium environment 'NoSuchEnv-v0'"),
])
def test_a_bad_robot_is_one_line_exit_2(tmp_path, robot, message):
    result = run_agent("--server", "http://127.0.0.1:9", "--token", "frt_x", "--robot", robot, "--state-dir", str(tmp_path), timeout=60)
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0 and message in result.stderr, result.stderr


def test_no_robot_is_one_line_exit_2(tmp_path):
    result = run_agent("--server", "http://127.0.0.1:9", "--token", "frt_x", "--state-dir", str(tmp_path), timeout=60)
    assert result.returncode == 2 and "no robot driver: pass --robot sim" in result.stderr, result.stderr
