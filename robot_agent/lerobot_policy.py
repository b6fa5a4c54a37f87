"""`--policy lerobot:PATH`: a policy trained with LeRobot (`lerobot-train`, e.g. ACT on a Foreman
export) run by the agent.

LeRobot 0.4.4 and its torch pin live in their own environment (scripts/lerobot_env.sh), so the
policy runs there, in a child process (robot_agent/lerobot_policy_bridge.py) that LeRobot's own code
loads the checkpoint in, behind the same pipe as the LeRobot robot driver. Chosen over LeRobot's
async-inference policy server: that server speaks gRPC to LeRobot's own robot client, while the
agent already has its control loop, chunk execution and a pipe to LeRobot's environment; a pipe is
local, needs no port and dies with the agent.

Each inference sends the robot's state and the cameras the policy was trained on (the checkpoint's
`observation.images.<camera>` at their trained size, captured when inference starts) and gets the
policy's whole action chunk. LeRobot's policies report no confidence: the uncertainty trigger is
off for them. A dead child is started again at the next inference (the control loop faults and
holds meanwhile).
"""

from __future__ import annotations

import logging
import threading
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from foreman_learning.policies.base import PolicyOutput
from robot_agent.drivers.lerobot_driver import Bridge, default_lerobot_python, start_bridge
from robot_agent.robot import Robot

log = logging.getLogger(__name__)

POLICY_BRIDGE = Path(__file__).with_name("lerobot_policy_bridge.py")
LOAD_TIMEOUT_S = 120.0  # importing torch and LeRobot, then the checkpoint
INFER_TIMEOUT_S = 10.0
IMAGE_PREFIX = "observation.images."
ARCHIVE_REQUIRED = ("config.json", "model.safetensors")  # a rolled-out LeRobot checkpoint: the server zips its directory
MAX_ARCHIVE_BYTES = 4 << 30


def is_lerobot_archive(path: Path) -> bool:
    """A rolled-out file that is a zipped LeRobot checkpoint (webapp's policy_register makes them)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return all(name in archive.namelist() for name in ARCHIVE_REQUIRED)


def unpack_lerobot_archive(archive_path: Path, into: Path) -> Path:
    """The archive's files into `into` (flat names only, bounded in size); returns `into`."""
    with zipfile.ZipFile(archive_path) as archive:
        members = archive.infolist()
        if any("/" in m.filename or "\\" in m.filename or m.filename.startswith(".") for m in members):
            raise ValueError(f"{archive_path}: a LeRobot checkpoint archive holds plain file names only")
        if sum(m.file_size for m in members) > MAX_ARCHIVE_BYTES:
            raise ValueError(f"{archive_path}: more than {MAX_ARCHIVE_BYTES >> 30} GiB unpacked")
        into.mkdir(parents=True, exist_ok=True)
        for member in members:
            (into / member.filename).write_bytes(archive.read(member))
    return into


def checkpoint_name(path: Path) -> str:
    """lerobot-train's OUTPUT/checkpoints/STEP/pretrained_model as OUTPUT@STEP (`last` resolved to its
    step), any other directory by its name."""
    parts = path.resolve().parts
    if len(parts) >= 4 and parts[-1] == "pretrained_model" and parts[-3] == "checkpoints":
        return f"{parts[-4]}@{parts[-2]}"
    return parts[-1]


class LeRobotPolicy:
    supports_prefix = False
    needs_ground_truth = False

    def __init__(self, path: Path, robot: Robot, python: Path | None = None) -> None:
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path}: no LeRobot checkpoint here (a pretrained_model directory with config.json, "
                                    "e.g. OUTPUT_DIR/checkpoints/last/pretrained_model)")
        self.python = python or default_lerobot_python()
        if not self.python.exists():
            raise ValueError(f"LeRobot's environment is not built at {self.python}: run scripts/lerobot_env.sh "
                             "(or pass --lerobot-python with a Python that has LeRobot 0.4.4)")
        self.path, self.robot = path, robot
        self.lock = threading.Lock()
        self.bridge, declared = self._start()
        if declared["action"] != robot.action_dim:
            self.close()
            raise ValueError(f"the policy acts on {declared['action']} numbers, robot {robot.name} on {robot.action_dim}")
        state_dim = len(robot.state())
        if declared["state"] and declared["state"] != state_dim:
            self.close()
            raise ValueError(f"the policy reads a state of {declared['state']} numbers, robot {robot.name} has {state_dim}")
        self.images: dict[str, tuple[str, int, int]] = {}  # image key -> (camera, width, height)
        for key, (_, height, width) in declared["images"].items():
            camera = key.removeprefix(IMAGE_PREFIX)
            if camera not in robot.cameras:
                self.close()
                raise ValueError(f"the policy was trained on camera {camera!r}; robot {robot.name} has {', '.join(robot.cameras) or 'none'}")
            self.images[key] = (camera, int(width), int(height))
        self.chunk = int(declared["chunk"])
        self.version = f"lerobot-{declared['type']}:{checkpoint_name(path)}"

    def _start(self) -> tuple[Bridge, dict[str, Any]]:
        return start_bridge(self.python, [str(self.path)], f"LeRobot policy {self.path}", LOAD_TIMEOUT_S, POLICY_BRIDGE)

    def infer(self, observation: Any, prefix: np.ndarray | None = None) -> PolicyOutput:
        state = observation.get("state") if isinstance(observation, dict) else None
        state = np.asarray(state if state is not None else self.robot.state(), dtype=np.float64)
        described, blobs, offset = [], [], 0
        for key, (camera, width, height) in self.images.items():
            image = np.ascontiguousarray(self.robot.capture(camera, (width, height)), dtype=np.uint8)
            if image.shape != (height, width, 3):
                raise ValueError(f"camera {camera} gave {image.shape}, the policy takes ({height}, {width}, 3)")
            described.append({"name": key, "shape": list(image.shape), "offset": offset})
            blobs.append(image.tobytes())
            offset += image.nbytes
        with self.lock:
            if self.bridge.process.poll() is not None:  # it died: load it again (the loop holds meanwhile)
                log.warning("the LeRobot policy process exited (%s): starting it again", self.bridge.process.returncode)
                self.bridge.kill()
                self.bridge, _ = self._start()
            reply, _ = self.bridge.request({"op": "infer", "state": state.tolist(), "images": described}, timeout_s=INFER_TIMEOUT_S,
                                           blob=b"".join(blobs))
        actions = np.asarray(reply["actions"], dtype=np.float64)
        if actions.ndim != 2 or actions.shape[1] != self.robot.action_dim or not len(actions):
            raise ValueError(f"the LeRobot policy answered actions of shape {actions.shape}")
        return PolicyOutput(actions, None)

    def close(self) -> None:
        with self.lock:
            self.bridge.close()
