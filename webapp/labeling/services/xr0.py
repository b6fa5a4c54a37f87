"""Xiaomi-Robotics-0 post-training format (../shared/xr0-protocol.md): per episode one JSON and one
mp4 per camera; `num_frames` equals every array's length and every video's frame count.

The simulated station has no joint angles and no wrist rotation: joints are written as zeros and
rotations as the identity, and the JSON says so under `foreman_note`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from webapp.labeling.services.lerobot import EpisodeSource, copy_video, frame_count, lease_ids, rows_for

VIEWS = {"head": "ego", "wrist_left": "wrist_left", "wrist_right": "wrist_right"}
ARM_STATE = 9  # per arm in the sim's state vector: x, y, z, vx, vy, vz, grip, torque/10, installed
ARM_ACTION = 5  # per arm in its action: vx, vy, vz, grip (>0 close), spin


def arm_arrays(state: np.ndarray, action: np.ndarray, fps: float, side: int) -> tuple[dict[str, Any], dict[str, Any]]:
    n = len(state)
    position = state[:, side * ARM_STATE: side * ARM_STATE + 3].astype(np.float64)
    grip = state[:, side * ARM_STATE + 6: side * ARM_STATE + 7].astype(np.float64)
    velocity = action[:, side * ARM_ACTION: side * ARM_ACTION + 3].astype(np.float64)
    grip_target = (action[:, side * ARM_ACTION + 3: side * ARM_ACTION + 4] > 0).astype(np.float64)
    identity = np.tile(np.eye(3).reshape(1, 9), (n, 1))
    zeros = np.zeros((n, 6))
    prefix = "left" if side == 0 else "right"
    proprio = {f"{prefix}_ee_pos": position, f"{prefix}_ee_rotm": identity, f"{prefix}_arm_joint": zeros, f"{prefix}_gripper_pos": grip}
    target = {f"{prefix}_ee_pos": position + velocity / fps, f"{prefix}_ee_rotm": identity, f"{prefix}_arm_joint": zeros,
              f"{prefix}_gripper_pos": grip_target}
    return proprio, target


def write_episodes(sources: list[EpisodeSource], root: Path, *, started: dict[str, str],
                   progress: Callable[[float, str], None] = lambda fraction, message: None) -> list[str]:
    """Write each episode under root/<index>_<episode>/; returns the directories written."""
    written = []
    for index, source in enumerate(sources):
        cameras = [c for c in VIEWS if c in source.videos]
        if not cameras:
            raise ValueError(f"episode {source.key} has none of the cameras XR0 expects ({', '.join(VIEWS)})")
        frames = min(frame_count(source.videos[c]) for c in cameras)
        rows = rows_for(source, frames, {lease: i for i, lease in enumerate(lease_ids(source.steps))})
        state_dim, action_dim = rows["observation.state"].shape[1], rows["action"].shape[1]
        if state_dim < 2 * ARM_STATE or action_dim < 2 * ARM_ACTION:
            raise ValueError(f"episode {source.key}: the XR0 export knows the simulated station's layout "
                             f"({2 * ARM_STATE + 1} state values, {2 * ARM_ACTION} action values), not {state_dim} and {action_dim}")
        directory = root / f"{index:05d}_{source.key}"
        fps = Fraction(source.fps).limit_denominator(1000)
        observations = {}
        for camera in cameras:
            name = f"{VIEWS[camera]}.mp4"
            copy_video(source.videos[camera], directory / name, fps, frames, [])
            observations[VIEWS[camera]] = [{"path": name, "start": 0, "end": frames, "fps": float(fps), "crop_bbox": None}]
        proprios: dict[str, Any] = {}
        actions: dict[str, Any] = {}
        for side in (0, 1):
            proprio, target = arm_arrays(rows["observation.state"], rows["action"], float(fps), side)
            proprios.update({k: v.round(6).tolist() for k, v in proprio.items()})
            actions.update({k: v.round(6).tolist() for k, v in target.items()})
        success = source.success or bool(source.good_demo)
        episode = {
            "trajectory_type": "success" if success else "invalid",
            "time": started.get(source.key, ""),
            "num_frames": frames,
            "instruction": {"general": [{
                "images": [observations[VIEWS[c]][0]["path"] for c in cameras],
                "conversations": [{"from": "human", "value": "<image>\n" * len(cameras) + source.task},
                                  {"from": "gpt", "value": "<bot></bot>"}],
            }]},
            "observations": observations,
            "proprios": proprios,
            "actions": actions,
            "foreman": {"episode": source.key, "robot": source.robot, "policy_version": source.policy_version,
                        "failure_mode": source.failure_mode or None, "failure_t": source.failure_t,
                        "intervention": rows["intervention"].astype(int).tolist()},
            "foreman_note": "simulated station: no joint angles (zeros) and no wrist rotation (identity); "
                            "actions are end-effector position targets one frame ahead",
        }
        (directory / "episode.json").write_text(json.dumps(episode, sort_keys=True))
        written.append(directory.name)
        progress((index + 1) / len(sources), f"episode {index + 1} of {len(sources)}")
    return written
