"""What every policy is to the agent: `infer(observation) -> PolicyOutput` plus three facts about it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class PolicyOutput:
    actions: np.ndarray  # (T, action_dim): a chunk, executed one action per control period
    confidence: float | None  # None: the policy cannot tell (the uncertainty trigger is off)


class Policy(Protocol):
    version: str  # reported to the server as the robot's policy_version
    # infer() keeps the first actions of `prefix` (the chunk still being executed) fixed, so the new
    # chunk continues smoothly; the agent passes a prefix only to a policy that says it does.
    supports_prefix: bool
    # It reads observation["station"], the simulator's ground truth, which a real robot cannot give.
    needs_ground_truth: bool

    def infer(self, observation: Any, prefix: np.ndarray | None = None) -> PolicyOutput: ...
