"""LeRobot's robots (SO-100/101, Koch, OMX, LeKiwi, ...) as Foreman robots: `--robot lerobot:TYPE`.

    python -m robot_agent --robot lerobot:so101_follower --robot.port=/dev/ttyACM0 --robot.id=my_arm \
        --robot.cameras="{front: {type: opencv, index_or_path: 0, width: 640, height: 480, fps: 30}}" ...

LeRobot's own classes drive the hardware (`make_robot_from_config`, its motor buses, calibration and
cameras), in LeRobot's own Python environment: LeRobot 0.4.4 pins torch < 2.11 and the agent 2.13,
so the robot lives in a child process (robot_agent/drivers/lerobot_bridge.py, started with that
environment's python) and this driver talks to it over a pipe, one request per control period
(about 0.2 ms of the period, plus what the bus and cameras take). scripts/lerobot_env.sh builds the
environment once; `--lerobot-python` (FOREMAN_LEROBOT_PYTHON) points at another one.

What LeRobot declares becomes the robot's declaration: each float of `observation_features` a state
feature, each of `action_features` an action feature (`shoulder_pan.pos`, ...), with the unit and
limits its motor bus's calibration gives (degrees or percent of the calibrated range), each camera
a camera at its configured rate. A hold commands every joint to where it is (a position-controlled
arm then stands still). A person drives it by joint jog; the gripper opens and closes. The bridge
reports a robot that stops answering as an error: the control loop faults and holds, and the
driver starts the bridge again, at most every few seconds, when the arm is asked to hold.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import os
import selectors
import struct
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np

from foreman_protocol.messages import TeleopSpec
from robot_agent.drivers.gym_env import frame_at
from robot_agent.modes import TeleopVelocity
from robot_agent.robot import Feature, Robot, StationStatus

log = logging.getLogger(__name__)

BRIDGE = Path(__file__).with_name("lerobot_bridge.py")
REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements-lerobot.txt"
HEADER = struct.Struct("<II")
START_TIMEOUT_S = 120.0  # importing LeRobot (torch) and connecting its motors and cameras
REPLY_TIMEOUT_S = 2.0  # a bus read and a camera frame take milliseconds: two seconds is a dead robot
RESTART_EVERY_S = 5.0
JOG_KEY_M_S = 0.05  # the dashboard's key speed (robot.js SPEED_M_S.teleop) ...
JOG_RANGE_FRACTION_S = 1 / 8  # ... moves a joint an eighth of its range per second
JOG_SPIN_REV_S = 2.5  # robot.js SPIN_REV_S
JOG_UNBOUNDED_S = 20.0  # a joint without limits: units per second at the key speed
GRIPPER = "gripper.pos"


class BridgeError(RuntimeError):
    """The LeRobot side failed a request, or stopped."""


def default_lerobot_python() -> Path:
    """Where scripts/lerobot_env.sh builds LeRobot's environment (keyed by requirements-lerobot.txt)."""
    home = Path(os.environ.get("FOREMAN_LEROBOT_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "foreman")
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:12] if REQUIREMENTS.exists() else "missing"
    return home / f"lerobot-{digest}" / "bin" / "python"


def child_environment() -> dict[str, str]:
    """The agent's environment without its Python path: LeRobot's interpreter imports its own packages."""
    return {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")} | {"PYTHONUNBUFFERED": "1"}


class Bridge:
    """The child process that holds the LeRobot robot (or policy: `script`), and the pipe to it."""

    def __init__(self, python: Path, args: list[str], script: Path = BRIDGE) -> None:
        self.process = subprocess.Popen([str(python), str(script), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, env=child_environment())
        assert self.process.stdin and self.process.stdout and self.process.stderr
        self.stdin: IO[bytes] = self.process.stdin
        self.stdout_fd = self.process.stdout.fileno()
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=20)
        self.declared = False  # until the robot has declared itself, its output is only the reason it failed
        threading.Thread(target=self._drain_stderr, args=(self.process.stderr,), name="lerobot-stderr", daemon=True).start()
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.stdout_fd, selectors.EVENT_READ)

    def _drain_stderr(self, stream: IO[bytes]) -> None:
        for raw in stream:
            line = raw.decode(errors="replace").rstrip()
            self.stderr_tail.append(line)
            log.log(logging.INFO if self.declared else logging.DEBUG, "lerobot: %s", line)

    def _read(self, size: int, deadline: float, timeout_s: float) -> bytes:
        chunks, remaining = [], size
        while remaining:
            left = deadline - time.monotonic()
            if left <= 0 or not self.selector.select(left):
                raise BridgeError(f"the LeRobot process did not answer within {timeout_s:.0f} s")
            chunk = os.read(self.stdout_fd, remaining)
            if not chunk:
                self.process.wait(timeout=5)
                detail = next((line for line in reversed(self.stderr_tail) if line.strip()), "")
                raise BridgeError(f"the LeRobot process exited ({self.process.returncode})" + (f": {detail}" if detail else ""))
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def receive(self, timeout_s: float) -> tuple[dict[str, Any], bytes]:
        deadline = time.monotonic() + timeout_s
        body_length, blob_length = HEADER.unpack(self._read(HEADER.size, deadline, timeout_s))
        message = json.loads(self._read(body_length, deadline, timeout_s))
        return message, self._read(blob_length, deadline, timeout_s) if blob_length else b""

    def request(self, message: dict[str, Any], timeout_s: float = REPLY_TIMEOUT_S, blob: bytes = b"") -> tuple[dict[str, Any], bytes]:
        body = json.dumps(message).encode()
        try:
            self.stdin.write(HEADER.pack(len(body), len(blob)) + body + blob)
            self.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise BridgeError("the LeRobot process is gone") from None
        reply, blob = self.receive(timeout_s)
        if not reply.get("ok"):
            raise BridgeError(str(reply.get("error", "the LeRobot robot refused the request")))
        return reply, blob

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.request({"op": "close"}, timeout_s=5)
            except BridgeError:
                pass
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.selector.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)
        self.selector.close()


def start_bridge(python: Path, args: list[str], what: str, timeout_s: float, script: Path = BRIDGE) -> tuple[Bridge, dict[str, Any]]:
    """Start a bridge and read its first reply, which declares what it holds; a bridge that cannot
    start, or says why not, is a ValueError of one line (`what` names it: "LeRobot robot ...")."""
    bridge = Bridge(python, args, script)
    try:
        hello, _ = bridge.receive(timeout_s)
    except BridgeError as error:
        bridge.kill()
        raise ValueError(f"{what}: {error}") from None
    if not hello.get("ok"):
        bridge.kill()
        raise ValueError(" ".join(str(hello.get("error")).split()))  # one line: draccus's messages span several
    bridge.declared = True
    return bridge, hello


@dataclass(frozen=True)
class Declared:
    robot_type: str
    state: list[str]
    action: list[str]
    features: dict[str, dict[str, Any]]
    cameras: dict[str, list[int]]
    camera_fps: dict[str, float | None]


class LeRobotRobot(Robot):
    def __init__(self, robot_type: str, options: dict[str, str], control_hz: float | None = None, python: Path | None = None) -> None:
        self.python = python or default_lerobot_python()
        if not self.python.exists():
            raise ValueError(f"LeRobot's environment is not built at {self.python}: run scripts/lerobot_env.sh "
                             "(or pass --lerobot-python with a Python that has LeRobot 0.4.4)")
        self.args = [f"--robot.type={robot_type}"] + [f"--robot.{key}={value}" for key, value in options.items()]
        self.lock = threading.Lock()
        self.bridge: Bridge | None = None
        self.last_start = 0.0
        declared = self._start()
        self.declared = declared
        self.name = f"{declared.robot_type}:{options.get('id', '')}".rstrip(":")
        self.robot_type = declared.robot_type  # so101_follower, ... as lerobot-record writes it
        self.control_hz = float(control_hz or 30.0)  # lerobot-record's default --dataset.fps
        feature = lambda key: Feature(key, declared.features[key]["unit"], declared.features[key]["low"], declared.features[key]["high"])  # noqa: E731
        self.state_features = tuple(feature(key) for key in declared.state)
        self.action_features = tuple(feature(key) for key in declared.action)
        self.action_dim = len(self.action_features)
        self.cameras = list(declared.cameras)
        self.camera_fps = {name: float(fps) for name, fps in declared.camera_fps.items() if fps}
        self.jog = [key for key in declared.action if key != GRIPPER][:4]
        self.teleop = TeleopSpec(space="joint", arms=["left"], grip=GRIPPER in declared.action,
                                 spin=self.jog[3] if len(self.jog) > 3 else None,
                                 axes=self._axes_text())
        self.state_values = np.zeros(len(self.state_features))
        self.images: dict[str, np.ndarray] = {}
        self.sent = np.zeros(self.action_dim)
        self.holding = False
        self.observe()

    def _axes_text(self) -> str:
        keys = ["A/D", "W/S", "R/F", "T (hold)"]  # vx, vy, vz, spin on the robot page
        return ", ".join(f"{key} jog {name}" for key, name in zip(keys, self.jog, strict=False))

    # ------------------------------------------------------------------ the bridge

    def _start(self) -> Declared:
        self.last_start = time.monotonic()
        self.bridge, hello = start_bridge(self.python, self.args, f"LeRobot robot {' '.join(self.args)}", START_TIMEOUT_S)
        return Declared(hello["robot_type"], hello["state"], hello["action"], hello["features"], hello["cameras"], hello["camera_fps"])

    def _restart(self) -> None:
        """After the bridge died: start it again (a cable put back), at most every RESTART_EVERY_S."""
        if time.monotonic() - self.last_start < RESTART_EVERY_S:
            raise BridgeError("the LeRobot robot is not connected")
        declared = self._start()
        if (declared.state, declared.action) != (self.declared.state, self.declared.action):
            assert self.bridge is not None
            self.bridge.close()
            self.bridge = None
            raise BridgeError("the LeRobot robot came back with other features: restart the agent")

    def _request(self, message: dict[str, Any]) -> dict[str, Any]:
        if self.bridge is None:
            self._restart()
        assert self.bridge is not None
        try:
            reply, blob = self.bridge.request(message)
        except BridgeError:
            self.bridge.kill()  # the pipe is out of step or closed: never read a late reply as this one's
            self.bridge = None
            raise
        self.state_values = np.asarray(reply["state"], dtype=np.float64)
        for image in reply["images"]:
            shape = tuple(image["shape"])
            size = int(np.prod(shape))
            self.images[image["name"]] = np.frombuffer(blob, dtype=np.uint8, count=size, offset=image["offset"]).reshape(shape)
        return reply

    def observe(self) -> None:
        with self.lock:
            self._request({"op": "observe"})

    # ------------------------------------------------------------------ Robot

    def reset(self, seed: int) -> StationStatus:
        # A real robot's cycle is the part in front of it: nothing to reset, its outcome is a person's call.
        with self.lock:
            self._request({"op": "observe"})
            self.holding = False
        return StationStatus(phase="running")

    def observation(self) -> dict[str, Any]:
        with self.lock:
            return {"state": self.state_values.copy(), "images": dict(self.images)}  # images are never written in place

    def state(self) -> np.ndarray:
        with self.lock:
            return self.state_values.copy()

    def step(self, action: np.ndarray) -> StationStatus:
        with self.lock:
            reply = self._request({"op": "act", "action": [float(value) for value in action]})
            self.sent = np.asarray(reply["sent"], dtype=np.float64)  # what LeRobot really sent (max_relative_target)
            self.holding = False
        return StationStatus(phase="running")

    def hold(self) -> StationStatus:
        """Every joint told to stay where it is, once; then only watched."""
        with self.lock:
            if self.holding:
                self._request({"op": "observe"})
            else:
                here = dict(zip(self.declared.state, self.state_values, strict=True))
                target = [float(here.get(key, 0.0)) for key in self.declared.action]  # a velocity without a position: 0
                reply = self._request({"op": "act", "action": target})
                self.sent = np.asarray(reply["sent"], dtype=np.float64)
                self.holding = True
        return StationStatus(phase="held")

    def applied_action(self) -> np.ndarray | None:
        with self.lock:
            return self.sent.copy()

    def capture(self, camera: str, size: tuple[int, int]) -> np.ndarray:
        with self.lock:
            image = self.images.get(camera)
        return frame_at(image, size)

    def teleop_action(self, command: TeleopVelocity) -> np.ndarray:
        with self.lock:
            here = dict(zip(self.declared.state, self.state_values, strict=True))
            action = np.array([self.sent[index] if not self.holding or key not in here else here[key]
                               for index, key in enumerate(self.declared.action)])
        index_of = {feature.name: index for index, feature in enumerate(self.action_features)}
        for key, value, key_speed in zip(self.jog, (command.vx, command.vy, command.vz, command.spin),
                                         (JOG_KEY_M_S, JOG_KEY_M_S, JOG_KEY_M_S, JOG_SPIN_REV_S), strict=False):
            feature = self.action_features[index_of[key]]
            span = (feature.high - feature.low) * JOG_RANGE_FRACTION_S if feature.low is not None and feature.high is not None else JOG_UNBOUNDED_S
            action[index_of[key]] += value / key_speed * span / self.control_hz
        if command.grip is not None and GRIPPER in index_of:
            gripper = self.action_features[index_of[GRIPPER]]
            open_closed: dict[Literal["open", "close"], float | None] = {"open": gripper.high, "close": gripper.low}
            target = open_closed.get(command.grip)
            if target is not None:
                action[index_of[GRIPPER]] = target
        return action

    def close(self) -> None:
        with self.lock:
            if self.bridge is not None:
                self.bridge.close()
                self.bridge = None
