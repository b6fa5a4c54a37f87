"""The sim's scripted expert (foreman_sim/expert.py) as a policy: it plans a short chunk on the
observation's station snapshot, ground truth that only the simulator can give."""

from __future__ import annotations

from typing import Any

import numpy as np

from foreman_learning.policies.base import PolicyOutput
from foreman_sim.expert import Expert


class ExpertPolicy(Expert):
    version = "sim-expert-v1"
    supports_prefix = False
    needs_ground_truth = True

    def infer(self, observation: dict[str, Any], prefix: np.ndarray | None = None) -> PolicyOutput:
        return PolicyOutput(self.plan(observation["station"]), 1.0)
