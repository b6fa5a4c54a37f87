"""The project's visuomotor policy: its network, its checkpoints, and the shipped weights.

It looks at each arm's wrist camera (32×32 grey) and its proprioception and predicts a chunk of
that arm's next actions. Both arms share one network: the right arm's view and state are mirrored
(x → −x) so it looks like a left arm. An ensemble of heads on a shared trunk predicts the chunk;
their disagreement on the next steps gives the confidence the agent's warning/intervention
thresholds use (calibrated after training, see foreman_learning/train.py).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from foreman_learning.policies.base import Policy, PolicyOutput

CHECKPOINT_FORMAT = "foreman-visuomotor"
DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "bc-sim-v2.pt"  # what --sim runs by default
ARMS = ("left", "right")
ARM_ACTION_DIM = 5  # vx, vy, vz, grip, spin
ARM_STATE_DIM = 9  # per arm in the station's state vector: position 3, velocity 3, grip, torque/10, nuts installed
# The network does not see velocities: with them it learns to copy its own last motion (the "copycat"
# problem of behaviour cloning) and stalls wherever it once slowed down.
NET_STATE_DIM = 7  # position 3, height at mm resolution, grip, torque/10, nuts installed
# Actions are learned in units where each is about ±1.
ACTION_SCALE = np.array([0.05, 0.05, 0.03, 1.0, 1.0], dtype=np.float32)
POSITION_ORIGIN = np.array([-0.22, 0.30, 0.03], dtype=np.float32)  # the left arm's neighbourhood
POSITION_SCALE = np.float32(0.1)


@dataclass
class PolicyConfig:
    horizon: int = 15
    heads: int = 5
    image_pixels: int = 32
    width: int = 256
    # Confidence = exp(-(disagreement / confidence_scale)²), disagreement over the first steps.
    confidence_scale: float = 0.1
    confidence_steps: int = 10
    version: str = "bc-sim-v2"
    trained: dict[str, Any] = field(default_factory=dict)
    # What one per-arm sample is, so the same network and training serve another robot: the nut
    # station's (its checkpoints carry no such keys) or ALOHA's (policies/aloha_visuomotor.py).
    embodiment: str = "nut_station"
    state_dim: int = NET_STATE_DIM
    action_dim: int = ARM_ACTION_DIM
    image_channels: int = 1


class VisuomotorNet(nn.Module):
    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = nn.Sequential(
            nn.Conv2d(config.image_channels, 16, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            image_features = self.encoder(torch.zeros(1, config.image_channels, config.image_pixels, config.image_pixels)).shape[1]
        self.trunk = nn.Sequential(
            nn.Linear(image_features + config.state_dim, config.width), nn.ReLU(),
            nn.Linear(config.width, config.width), nn.ReLU(),
        )
        self.heads = nn.Linear(config.width, config.heads * config.horizon * config.action_dim)

    def forward(self, images: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """images (B, C, P, P) in [0, 1], states (B, state_dim) → (B, heads, horizon, action_dim)."""
        features = torch.cat([self.encoder(images - 0.35), states], dim=1)
        out = self.heads(self.trunk(features))
        return out.view(-1, self.config.heads, self.config.horizon, self.config.action_dim)


def arm_inputs(state: np.ndarray, images: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-arm network inputs from one observation: images (2, 1, P, P), states (2, NET_STATE_DIM).
    The right arm is mirrored so both arms look like a left arm."""
    state = np.asarray(state, dtype=np.float32)
    arm_images, arm_states = [], []
    for index, side in enumerate(ARMS):
        raw = state[index * ARM_STATE_DIM: (index + 1) * ARM_STATE_DIM].copy()
        image = np.asarray(images[f"wrist_{side}"], dtype=np.float32)
        if side == "right":
            raw[0], raw[3] = -raw[0], -raw[3]
            image = image[:, ::-1]
        position = (raw[0:3] - POSITION_ORIGIN) / POSITION_SCALE
        fine_height = min(raw[2], 0.03) / 0.003  # contact and grasp happen within millimetres of the surface
        arm_states.append(np.concatenate([position, [fine_height], raw[6:9]]))  # no clock: it invites spurious cues
        arm_images.append(image[None])
    return np.stack(arm_images).astype(np.float32), np.stack(arm_states).astype(np.float32)


def arm_actions_to_action(arm_actions: np.ndarray) -> np.ndarray:
    """(2, T, 5) normalized per-arm actions (right mirrored) → (T, 10) station actions."""
    actions = arm_actions * ACTION_SCALE
    right = actions[1].copy()
    right[:, 0] = -right[:, 0]
    return np.concatenate([actions[0], right], axis=1)


def action_to_arm_actions(action: np.ndarray) -> np.ndarray:
    """(T, 10) station actions → (2, T, 5) normalized per-arm actions (right mirrored)."""
    action = np.asarray(action, dtype=np.float32)
    left, right = action[:, :5].copy(), action[:, 5:].copy()
    right[:, 0] = -right[:, 0]
    return np.stack([left, right]) / ACTION_SCALE


class VisuomotorPolicy:
    """The trained network as the agent's policy: `infer(observation) -> PolicyOutput`."""

    supports_prefix = False
    needs_ground_truth = False

    def __init__(self, net: VisuomotorNet) -> None:
        self.net = net.eval()
        self.config = net.config
        self.version = net.config.version

    def infer_batch(self, states: np.ndarray, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-arm inputs for many observations at once → (N, 2, T, D) chunks (ensemble mean) and
        (N,) confidences (the least confident arm, from the heads' spread on the first three numbers)."""
        with torch.inference_mode():
            out = self.net(torch.from_numpy(images), torch.from_numpy(states)).numpy()
        mean = out.mean(axis=1)  # (2N, T, D)
        steps = self.config.confidence_steps
        spread = out[:, :, :steps, :3].std(axis=1).mean(axis=(1, 2))  # motion disagreement per arm
        confidence = np.exp(-(spread / self.config.confidence_scale) ** 2)
        n = len(states) // 2
        return mean.reshape(n, 2, *mean.shape[1:]), confidence.reshape(n, 2).min(axis=1)

    def infer(self, observation: dict[str, Any], prefix: np.ndarray | None = None) -> PolicyOutput:
        images, states = arm_inputs(observation["state"], observation["images"])
        chunks, confidence = self.infer_batch(states, images)
        return PolicyOutput(arm_actions_to_action(chunks[0]), float(confidence[0]))


def save_checkpoint(net: VisuomotorNet, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": CHECKPOINT_FORMAT, "config": asdict(net.config), "state_dict": net.state_dict()}, path)
    return path


def load_net(path: str | Path) -> VisuomotorNet:
    data = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a {CHECKPOINT_FORMAT} checkpoint")
    net = VisuomotorNet(PolicyConfig(**data["config"]))
    net.load_state_dict(data["state_dict"])
    return net


def load_visuomotor(path: str | Path) -> VisuomotorPolicy:
    """A nut-station policy checkpoint (what retraining fine-tunes)."""
    net = load_net(path)
    if net.config.embodiment != "nut_station":
        raise ValueError(f"{path} is a policy for {net.config.embodiment}, not the nut station")
    return VisuomotorPolicy(net)


def load_checkpoint_policy(path: str | Path) -> Policy:
    """Any embodiment's checkpoint as the agent's policy: the nut station's or ALOHA's."""
    net = load_net(path)
    if net.config.embodiment == "aloha":
        from foreman_learning.policies.aloha_visuomotor import AlohaVisuomotorPolicy

        return AlohaVisuomotorPolicy(net)
    if net.config.embodiment != "nut_station":
        raise ValueError(f"{path}: a policy for {net.config.embodiment!r}, which this version does not know")
    return VisuomotorPolicy(net)


def scale_for_median_confidence(spreads: np.ndarray, median_confidence: float) -> float:
    """The confidence scale that puts the median step at `median_confidence`."""
    median = float(np.median(spreads))
    return median / math.sqrt(-math.log(median_confidence)) if median > 0 else 1.0
