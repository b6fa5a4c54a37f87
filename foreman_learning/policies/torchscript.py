"""Any TorchScript policy file: module(state (1, S), images (1, C, H, W)) → (T, A) [+ confidence]."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from foreman_learning.policies.base import PolicyOutput


class TorchScriptPolicy:
    supports_prefix = False
    needs_ground_truth = False

    def __init__(self, path: str) -> None:
        self.module = torch.jit.load(path, map_location="cpu").eval()
        self.version = Path(path).stem

    def infer(self, observation: dict[str, Any], prefix: np.ndarray | None = None) -> PolicyOutput:
        state = torch.as_tensor(np.asarray(observation["state"], dtype=np.float32))[None]
        images = [torch.as_tensor(np.asarray(v, dtype=np.float32)) for _, v in sorted(observation["images"].items())]
        with torch.inference_mode():
            result = self.module(state, torch.stack(images)[None])
        if isinstance(result, (tuple, list)):
            actions, confidence = result[0], float(result[1])
        else:
            actions, confidence = result, None
        return PolicyOutput(np.asarray(actions, dtype=np.float64).reshape(-1, np.asarray(actions).shape[-1]), confidence)
