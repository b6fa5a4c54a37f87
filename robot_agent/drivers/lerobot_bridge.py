"""A LeRobot robot behind a pipe: runs in LeRobot's own Python environment, not the agent's.

    <lerobot env>/bin/python lerobot_bridge.py --robot.type=so101_follower --robot.port=/dev/ttyACM0 --robot.id=arm

The agent's `lerobot:TYPE` driver (robot_agent/drivers/lerobot_driver.py) starts this file with the
`--robot.*` options a LeRobot user already passes to `lerobot-record`; LeRobot's own config
registry parses them (draccus), `make_robot_from_config` builds the robot, and the bridge answers
the agent's requests one at a time. It imports nothing of Foreman's (LeRobot pins torch < 2.11, the
agent 2.13: two environments), only the standard library, numpy and LeRobot.

Wire: each message is an 8-byte header (little-endian u32 JSON length, u32 blob length), the JSON,
then the blob: camera images back to back, each described in the JSON (name, shape, offset).
Requests: {"op": "observe"}, {"op": "act", "action": [...]}, {"op": "close"}. Every reply has
"ok"; a failure is {"ok": false, "error": "..."} and the bridge goes on serving. The first reply,
sent unasked, declares the robot (or says why it cannot be used). Replies travel on the process's
original stdout; LeRobot's own prints go to stderr, so nothing it prints can corrupt a reply.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import struct
import sys
from dataclasses import make_dataclass
from typing import Any, BinaryIO

# Run by path, this file's directory is sys.path[0]: the agent's modules there must not shadow LeRobot's.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

HEADER = struct.Struct("<II")
MAX_MESSAGE = 64 * 1024 * 1024
CAMERA_MODULES = ("opencv", "realsense", "zmq", "reachy2_camera")
ROBOT_MODULES = ("so_follower", "koch_follower", "omx_follower", "bi_so_follower", "lekiwi", "hope_jr", "reachy2",
                 "openarm_follower", "bi_openarm_follower", "earthrover_mini_plus", "unitree_g1")


def send(out: BinaryIO, message: dict[str, Any], blob: bytes = b"") -> None:
    body = json.dumps(message).encode()
    out.write(HEADER.pack(len(body), len(blob)) + body + blob)
    out.flush()


def receive(inp: BinaryIO) -> tuple[dict[str, Any], bytes] | None:
    """The next request and its blob, or None when the agent went away."""
    header = inp.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    body_length, blob_length = HEADER.unpack(header)
    if body_length + blob_length > MAX_MESSAGE:
        raise ValueError(f"message of {body_length + blob_length} bytes")
    return json.loads(inp.read(body_length)), inp.read(blob_length)


def register_robots() -> None:
    """Import LeRobot's camera and robot packages so their configs register (as lerobot-record does);
    one that needs an SDK not installed here is skipped. Third-party robots (lerobot_robot_* packages) too."""
    for module in [f"lerobot.cameras.{name}" for name in CAMERA_MODULES] + [f"lerobot.robots.{name}" for name in ROBOT_MODULES]:
        try:
            importlib.import_module(module)
        except Exception:  # noqa: BLE001 - a robot whose SDK is missing cannot be asked for anyway
            logging.debug("%s not available", module)
    try:
        from lerobot.utils.import_utils import register_third_party_plugins

        register_third_party_plugins()
    except Exception:  # noqa: BLE001
        logging.debug("no third-party LeRobot plugins")


def motor_limits(robot: Any, motor: str) -> tuple[str, float | None, float | None]:
    """(unit, low, high) of a motor's normalized position, from its bus's calibration (LeRobot's
    MotorsBus._normalize): ±100 or 0..100 percent of the calibrated range, or degrees about its middle."""
    bus = getattr(robot, "bus", None)
    motors = getattr(bus, "motors", {}) or {}
    calibration = getattr(bus, "calibration", {}) or {}
    if bus is None or motor not in motors:
        return "", None, None
    mode = getattr(motors[motor].norm_mode, "name", "")
    if mode == "RANGE_M100_100":
        return "%", -100.0, 100.0
    if mode == "RANGE_0_100":
        return "%", 0.0, 100.0
    if mode == "DEGREES" and motor in calibration:
        low, high = calibration[motor].range_min, calibration[motor].range_max
        resolution = bus.model_resolution_table[motors[motor].model] - 1
        middle = (low + high) / 2
        return "deg", (low - middle) * 360 / resolution, (high - middle) * 360 / resolution
    return "deg" if mode == "DEGREES" else "", None, None


def declaration(robot: Any, config: Any) -> dict[str, Any]:
    observation_features = robot.observation_features
    state = [key for key, kind in observation_features.items() if kind is float]
    cameras = {key: list(shape) for key, shape in observation_features.items() if isinstance(shape, tuple) and len(shape) == 3}
    action = [key for key, kind in robot.action_features.items() if kind is float]
    features = {}
    for key in dict.fromkeys(state + action):
        unit, low, high = motor_limits(robot, key.removesuffix(".pos")) if key.endswith(".pos") else ("", None, None)
        features[key] = {"unit": unit, "low": low, "high": high}
    camera_configs = getattr(config, "cameras", {}) or {}
    fps = {key: getattr(camera_configs.get(key), "fps", None) for key in cameras}
    return {"ok": True, "robot_type": robot.name, "id": config.id, "state": state, "action": action, "features": features,
            "cameras": cameras, "camera_fps": fps}


def observe(robot: Any, state_keys: list[str], camera_keys: list[str]) -> tuple[dict[str, Any], bytes]:
    import numpy as np

    observation = robot.get_observation()
    images, blobs, offset = [], [], 0
    for key in camera_keys:
        image = np.ascontiguousarray(observation[key], dtype=np.uint8)
        blobs.append(image.tobytes())
        images.append({"name": key, "shape": list(image.shape), "offset": offset})
        offset += image.nbytes
    return {"ok": True, "state": [float(observation[key]) for key in state_keys], "images": images}, b"".join(blobs)


def main(argv: list[str]) -> int:
    out = os.fdopen(os.dup(1), "wb")  # replies only; everything printed goes to stderr
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    inp = sys.stdin.buffer
    logging.basicConfig(level=os.environ.get("FOREMAN_LEROBOT_LOG", "WARNING"), stream=sys.stderr)
    try:
        import draccus
        from lerobot.robots import RobotConfig, make_robot_from_config
    except ImportError as error:
        send(out, {"ok": False, "error": f"LeRobot is not installed in {sys.prefix}: {error} (scripts/lerobot_env.sh builds its environment)"})
        return 2

    register_robots()
    # The type as the user named it (a config registered under two names reports the first).
    robot_type = next((arg.split("=", 1)[1] for arg in argv if arg.startswith("--robot.type=")), "robot")

    # `robot: RobotConfig`, as lerobot-record's config has it (made here: RobotConfig is imported late).
    BridgeConfig = make_dataclass("BridgeConfig", [("robot", RobotConfig)])

    try:
        config = draccus.parse(BridgeConfig, args=argv).robot
        robot = make_robot_from_config(config)
    except (Exception, SystemExit) as error:  # noqa: BLE001 - draccus exits on a bad option: say which
        send(out, {"ok": False, "error": f"LeRobot cannot make the robot from {' '.join(argv)}: {type(error).__name__}: {error}"})
        return 2
    try:
        robot.connect(calibrate=False)  # calibrating asks questions on a terminal: never here
    except Exception as error:  # noqa: BLE001 - a missing port, a motor that does not answer
        send(out, {"ok": False, "error": f"cannot connect the {robot_type} on {getattr(config, 'port', '?')}: {type(error).__name__}: {error}"})
        return 2
    if not robot.is_calibrated:
        robot.disconnect()
        port = getattr(config, "port", None)
        send(out, {"ok": False, "error": f"the {robot_type} {config.id!r} is not calibrated (its motors disagree with "
                                         f"{robot.calibration_fpath}): run lerobot-calibrate --robot.type={robot_type}"
                                         + (f" --robot.port={port}" if port else "") + f" --robot.id={config.id} first"})
        return 2

    declared = declaration(robot, config)
    send(out, declared)
    state_keys, camera_keys, action_keys = declared["state"], list(declared["cameras"]), declared["action"]
    try:
        while (received := receive(inp)) is not None:
            request, _ = received
            op = request.get("op")
            try:
                if op == "observe":
                    send(out, *observe(robot, state_keys, camera_keys))
                elif op == "act":
                    values = request["action"]
                    if len(values) != len(action_keys):
                        raise ValueError(f"{len(values)} action values for {len(action_keys)} action features")
                    sent = robot.send_action(dict(zip(action_keys, map(float, values), strict=True)))
                    reply, blob = observe(robot, state_keys, camera_keys)
                    reply["sent"] = [float(sent.get(key, value)) for key, value in zip(action_keys, values, strict=True)]
                    send(out, reply, blob)
                elif op == "close":
                    send(out, {"ok": True})
                    break
                else:
                    send(out, {"ok": False, "error": f"unknown op {op!r}"})
            except Exception as error:  # noqa: BLE001 - a motor that stops answering: the agent faults and holds
                send(out, {"ok": False, "error": f"{type(error).__name__}: {error}"})
    finally:
        try:
            robot.disconnect()  # torque off when the config says so (LeRobot's disable_torque_on_disconnect)
        except Exception as error:  # noqa: BLE001
            print(f"disconnect failed: {error}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
