"""The project's visuomotor network on ALOHA (gym-aloha's bimanual insertion): what a per-arm sample
is there, and the trained network as the agent's policy. Trained by robot_agent/train_aloha.py with
foreman_learning.train's own `fit` on the scripted expert's demonstrations.

Per arm, the network sees that arm's wrist camera and the overview camera (32×32 grey each, two
channels) and the arm's joint positions and gripper (its velocities stay out: the copycat problem),
with a one-hot of which arm it is. It predicts the arm's next `horizon` actions: each joint's target
relative to where the joint is now, and the gripper's absolute target (0 closed .. 1 open).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from foreman_learning.policies.base import PolicyOutput
from foreman_learning.policies.visuomotor import PolicyConfig, VisuomotorPolicy

SIDES = ("left", "right")
ARM_DOF = 7  # six joints and the gripper, per arm (gym-aloha's action layout)
STATE_DIM = ARM_DOF + 2  # the arm's positions, and which arm it is
IMAGE_PIXELS = 32
JOINT_DELTA_SCALE = np.float32(0.25)  # rad: joint targets ahead of the joints, learned in about ±1 units


def aloha_config(version: str, horizon: int = 20, pixels: int = IMAGE_PIXELS) -> PolicyConfig:
    return PolicyConfig(horizon=horizon, image_pixels=pixels, version=version, embodiment="aloha",
                        state_dim=STATE_DIM, action_dim=ARM_DOF, image_channels=2)


def grey(image: np.ndarray, pixels: int = IMAGE_PIXELS) -> np.ndarray:
    """(H, W, 3) uint8 → (pixels, pixels) float32 in [0, 1] (area average over a centre crop to square)."""
    image = np.asarray(image, dtype=np.float32)
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = image[top: top + side, left: left + side].mean(axis=2)
    cell = side // pixels
    square = square[: cell * pixels, : cell * pixels]
    return (square.reshape(pixels, cell, pixels, cell).mean(axis=(1, 3)) / 255.0).astype(np.float32)


def arm_inputs(state: np.ndarray, images: Mapping[str, np.ndarray], pixels: int = IMAGE_PIXELS) -> tuple[np.ndarray, np.ndarray]:
    """One observation → per-arm images (2, 2, P, P) and states (2, STATE_DIM)."""
    state = np.asarray(state, dtype=np.float32)
    top = grey(images["top"], pixels)
    arm_images, arm_states = [], []
    for index, side in enumerate(SIDES):
        arm_images.append(np.stack([grey(images[f"{side}_wrist"], pixels), top]))
        which = np.zeros(2, dtype=np.float32)
        which[index] = 1.0
        arm_states.append(np.concatenate([state[ARM_DOF * index: ARM_DOF * (index + 1)], which]))
    return np.stack(arm_images).astype(np.float32), np.stack(arm_states).astype(np.float32)


def action_to_arm_targets(actions: np.ndarray, state: np.ndarray) -> np.ndarray:
    """(T, 14) absolute actions → (2, T, 7) learned units: joint targets relative to the joints now."""
    actions = np.asarray(actions, dtype=np.float32)
    here = np.asarray(state, dtype=np.float32)[: 2 * ARM_DOF]
    out = []
    for index in range(2):
        arm = actions[:, ARM_DOF * index: ARM_DOF * (index + 1)].copy()
        arm[:, :6] = (arm[:, :6] - here[ARM_DOF * index: ARM_DOF * index + 6]) / JOINT_DELTA_SCALE
        out.append(arm)
    return np.stack(out)


def arm_targets_to_action(arm_targets: np.ndarray, state: np.ndarray) -> np.ndarray:
    """(2, T, 7) learned units → (T, 14) absolute actions."""
    here = np.asarray(state, dtype=np.float32)[: 2 * ARM_DOF]
    arms = []
    for index in range(2):
        arm = np.asarray(arm_targets[index], dtype=np.float32).copy()
        arm[:, :6] = arm[:, :6] * JOINT_DELTA_SCALE + here[ARM_DOF * index: ARM_DOF * index + 6]
        arm[:, 6] = np.clip(arm[:, 6], 0.0, 1.0)
        arms.append(arm)
    return np.concatenate(arms, axis=1)


class AlohaVisuomotorPolicy(VisuomotorPolicy):
    """The trained network driving ALOHA: `infer(observation) -> PolicyOutput` (14 joint targets a
    step); the ensemble and its confidence are the nut station policy's (`infer_batch`)."""

    def infer(self, observation: dict[str, Any], prefix: np.ndarray | None = None) -> PolicyOutput:
        images, states = arm_inputs(observation["state"], observation["images"], self.config.image_pixels)
        chunks, confidence = self.infer_batch(states, images)
        return PolicyOutput(arm_targets_to_action(chunks[0], observation["state"]), float(confidence[0]))
