"""The lerobot:TYPE driver: LeRobot's own SO-101 follower class, in LeRobot's own environment, on a
stand-in of its Feetech servo bus (a pseudo-terminal: tests/agent/feetech_standin.py) and a stand-in
of a ZMQ camera (tests/agent/zmq_camera_standin.py). scripts/lerobot_env.sh builds the environment
once (about 70 s, cached outside the checkout)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from robot_agent.drivers import DriverError, lerobot_driver, make_robot
from robot_agent.drivers.lerobot_driver import BridgeError, LeRobotRobot
from robot_agent.modes import TeleopVelocity
from tests.agent.feetech_standin import FeetechBusStandIn
from tests.agent.station import stop_agent
from tests.agent.test_cli import run_agent

ROOT = Path(__file__).resolve().parents[2]
MOTORS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
# (homing offset, range min, range max) per servo id, as lerobot-calibrate would have left them.
CALIBRATION = {1: (-48, 1000, 3000), 2: (0, 900, 3100), 3: (0, 1000, 3000), 4: (0, 1000, 3000), 5: (0, 0, 4095), 6: (0, 2000, 3000)}


def write_calibration(directory: Path, robot_id: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{robot_id}.json").write_text(json.dumps({
        name: {"id": index + 1, "drive_mode": 0, "homing_offset": CALIBRATION[index + 1][0],
               "range_min": CALIBRATION[index + 1][1], "range_max": CALIBRATION[index + 1][2]}
        for index, name in enumerate(MOTORS)}))


@pytest.fixture
def bus() -> Iterator[FeetechBusStandIn]:
    with FeetechBusStandIn() as standin:
        standin.calibrate(CALIBRATION)
        yield standin


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def camera(lerobot_python: Path) -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen([str(lerobot_python), str(ROOT / "tests" / "agent" / "zmq_camera_standin.py"), str(port), "320", "240", "30"])
    yield port
    process.kill()
    process.wait(timeout=10)


def options(bus: FeetechBusStandIn, tmp_path: Path, camera_port: int | None = None) -> dict[str, str]:
    write_calibration(tmp_path / "calibration", "arm")
    result = {"port": bus.port, "id": "arm", "calibration_dir": str(tmp_path / "calibration")}
    if camera_port is not None:
        result["cameras"] = (f"{{front: {{type: zmq, server_address: 127.0.0.1, port: {camera_port}, width: 320, height: 240, "
                             "fps: 30, warmup_s: 1}}")
    return result


@pytest.fixture
def arm(lerobot_python: Path, bus: FeetechBusStandIn, camera: int, tmp_path: Path) -> Iterator[LeRobotRobot]:
    robot = make_robot("lerobot:so101_follower", None, options(bus, tmp_path, camera), lerobot_python)
    assert isinstance(robot, LeRobotRobot)
    yield robot
    robot.close()


def jog(axis: str, value: float) -> TeleopVelocity:
    speeds = {"vx": 0.0, "vy": 0.0, "vz": 0.0, "spin": 0.0, axis: value}
    return TeleopVelocity("lease", 1, "left", speeds["vx"], speeds["vy"], speeds["vz"], speeds["spin"], None, 0.0)


def test_declares_what_lerobot_says_with_limits_from_its_calibration(arm: LeRobotRobot) -> None:
    assert [f.name for f in arm.action_features] == [f"{motor}.pos" for motor in MOTORS]
    assert [f.name for f in arm.state_features] == [f"{motor}.pos" for motor in MOTORS]
    pan = arm.action_features[0]
    # LeRobot's degrees: (step - middle of the calibrated range) * 360 / 4095.
    assert pan.unit == "deg" and pan.low == pytest.approx(-1000 * 360 / 4095) and pan.high == pytest.approx(1000 * 360 / 4095)
    assert (arm.action_features[5].unit, arm.action_features[5].low, arm.action_features[5].high) == ("%", 0.0, 100.0)
    assert arm.control_hz == 30.0 and arm.cameras == ["front"] and arm.camera_fps == {"front": 30.0}
    assert arm.teleop is not None and arm.teleop.space == "joint" and arm.teleop.grip and "A/D jog shoulder_pan.pos" in arm.teleop.axes


def test_steps_move_the_servos_and_a_hold_stops_them_where_they_are(arm: LeRobotRobot, bus: FeetechBusStandIn) -> None:
    arm.reset(0)
    start = arm.state()[0]
    for _ in range(60):  # 2 s toward +40 degrees
        arm.step(np.array([40.0, 0.0, 0.0, 0.0, 0.0, 50.0]))
        time.sleep(1 / 30)
    assert arm.state()[0] > start + 30
    sent = arm.applied_action()
    assert sent is not None and sent[0] == pytest.approx(40.0)  # what LeRobot sent
    arm.step(np.array([-60.0, 0.0, 0.0, 0.0, 0.0, 50.0]))  # far away: the servo would travel ~1 s
    time.sleep(0.1)
    arm.hold()  # the goal becomes where the joint is now
    time.sleep(0.5)
    held = bus.present(1)
    time.sleep(0.3)
    assert abs(bus.present(1) - held) <= 2 and arm.state()[0] > -50  # it stopped on the way


def test_a_person_jogs_joints_and_the_gripper_by_the_teleop_axes(arm: LeRobotRobot) -> None:
    arm.reset(0)
    arm.hold()
    before = arm.state().copy()
    for _ in range(45):  # A/D held 1.5 s: an eighth of the pan range per second
        arm.step(arm.teleop_action(jog("vx", 0.05)))
        time.sleep(1 / 30)
    moved = arm.state() - before
    assert moved[0] > 15 and abs(moved[1]) < 2
    closing = arm.teleop_action(TeleopVelocity("lease", 2, "left", 0.0, 0.0, 0.0, 0.0, "close", 0.0))
    assert closing[5] == 0.0


def test_camera_frames_cross_the_pipe_and_move(arm: LeRobotRobot) -> None:
    arm.reset(0)
    first = arm.capture("front", (320, 240)).copy()
    time.sleep(0.3)
    arm.hold()
    second = arm.capture("front", (320, 240))
    assert first.shape == (240, 320, 3) and first.max() > 200  # the stand-in's white bar
    assert np.argmax(first[120, :, 0] > 200) != np.argmax(second[120, :, 0] > 200)
    assert arm.observation()["images"]["front"].shape == (240, 320, 3)


def test_a_bus_that_stops_answering_is_an_error_then_it_comes_back(arm: LeRobotRobot, bus: FeetechBusStandIn, monkeypatch: Any) -> None:
    arm.reset(0)
    bus.silent = True
    with pytest.raises(BridgeError):
        arm.step(np.zeros(6))
    bus.silent = False
    monkeypatch.setattr(lerobot_driver, "RESTART_EVERY_S", 0.0)
    deadline = time.monotonic() + 60
    while True:  # LeRobot answered with an error (the bridge goes on), or the bridge is started again
        try:
            arm.hold()
            break
        except BridgeError:
            assert time.monotonic() < deadline, "the arm never came back"
            time.sleep(0.2)
    assert arm.state().shape == (6,)


def test_a_dead_lerobot_process_is_an_error_and_is_started_again(arm: LeRobotRobot, monkeypatch: Any) -> None:
    arm.reset(0)
    assert arm.bridge is not None
    arm.bridge.process.kill()
    with pytest.raises(BridgeError, match="exited|gone"):
        arm.hold()
    monkeypatch.setattr(lerobot_driver, "RESTART_EVERY_S", 0.0)
    arm.hold()
    assert arm.bridge is not None and arm.bridge.process.poll() is None


def test_an_uncalibrated_arm_says_how_to_calibrate_it(lerobot_python: Path, bus: FeetechBusStandIn, tmp_path: Path) -> None:
    bus.calibrate({1: (0, 0, 4095)})  # servo 1 disagrees with the calibration file now
    with pytest.raises(DriverError, match="not calibrated.*lerobot-calibrate --robot.type=so101_follower"):
        make_robot("lerobot:so101_follower", None, options(bus, tmp_path), lerobot_python)


def test_bad_lerobot_settings_are_one_line_exit_2(lerobot_python: Path, tmp_path: Path) -> None:
    base = ("--server", "http://127.0.0.1:9", "--token", "frt_x", "--state-dir", str(tmp_path), "--lerobot-python", str(lerobot_python))
    cases = [
        (("--robot", "lerobot:so101_follower", "--robot.port", "/nonexistent/ttyACM0", "--robot.id=arm"), "cannot connect the so"),
        (("--robot", "lerobot:no_such_robot"), "LeRobot cannot make the robot"),
        (("--robot", "sim", "--robot.port=/dev/ttyACM0"), "takes no --robot.KEY options"),
    ]
    for argv, message in cases:
        result = run_agent(*base, *argv, timeout=120)
        assert result.returncode == 2 and result.stderr.strip().count("\n") == 0 and message in result.stderr, result.stderr
    result = run_agent(*base[:6], "--robot", "lerobot:so101_follower", "--lerobot-python", str(tmp_path / "none" / "python"), timeout=60)
    assert result.returncode == 2 and "scripts/lerobot_env.sh" in result.stderr, result.stderr


@pytest.fixture
def server_settles() -> Iterator[None]:
    from tests.conftest import wait_for_servers_to_settle

    yield
    wait_for_servers_to_settle()


@pytest.mark.django_db(transaction=True)
async def test_agent_on_a_lerobot_arm_declares_it_and_a_person_drives_it(fleet, users, daphne, tmp_path, cleanup, server_settles,
                                                                         lerobot_python, bus, camera):
    """The agent on LeRobot's SO-101 against the real server: the declaration reaches the API, and
    WebSocket teleop under a lease moves the stand-in's shoulder servo."""
    from channels.db import database_sync_to_async

    from tests.agent.station import make_agent
    from tests.conftest import fleet_socket
    from tests.servers import eventually
    from webapp.fleet.models import Robot as RobotRow

    robot = make_robot("lerobot:so101_follower", None, options(bus, tmp_path, camera), lerobot_python)
    agent = make_agent(daphne.url, fleet.tokens["r1"], tmp_path / "r1", robot, None)
    task = asyncio.create_task(agent.run())
    try:
        await eventually(lambda: agent.link.is_connected, timeout=30, what="welcome")
        features = (await database_sync_to_async(RobotRow.objects.get)(name="r1")).features
        assert features["control_hz"] == 30.0 and features["action"][0]["name"] == "shoulder_pan.pos"
        assert features["teleop"]["space"] == "joint"

        operator, _ = await fleet_socket(users["operator"])
        cleanup.append(operator)
        await operator.send({"type": "claim", "id": "c1", "robot": "r1", "mode": "teleop"})
        result = await operator.recv_until(lambda m: m.get("ref") == "c1")
        lease_id = result["data"]["lease"]["id"]
        await eventually(lambda: agent.modes.mode == "teleop", what="teleop under the lease")
        pan_before = bus.present(1)
        for seq in range(1, 40):
            await operator.send({"type": "teleop", "robot": "r1", "lease_id": lease_id, "seq": seq, "arm": "left", "vx": 0.05})
            await asyncio.sleep(0.03)
        await eventually(lambda: bus.present(1) > pan_before + 100, what="the shoulder servo turns")
        await operator.send({"type": "release", "id": "rel", "robot": "r1", "lease_id": lease_id})
        await eventually(lambda: agent.modes.lease is None, what="hand-back")
    finally:
        await stop_agent(agent, task)
        robot.close()
