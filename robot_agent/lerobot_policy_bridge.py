"""A LeRobot policy behind a pipe: runs in LeRobot's own Python environment, not the agent's.

    <lerobot env>/bin/python lerobot_policy_bridge.py PRETRAINED_MODEL_DIR

The agent's `--policy lerobot:PATH` (robot_agent/lerobot_policy.py) starts this file on a checkpoint
that `lerobot-train` wrote (`.../checkpoints/last/pretrained_model`: config.json, model.safetensors
and the pre/post-processor pipelines with the dataset's normalization). LeRobot's own code loads the
policy and its processors; each request is one observation and the reply the policy's whole action
chunk (`predict_action_chunk`), unnormalized, in the robot's action units. It imports nothing of
Foreman's package, only the standard library, numpy, torch and LeRobot, and speaks the robot bridge's
wire (robot_agent/drivers/lerobot_bridge.py: header, JSON, blob), loaded from that file.

The first reply, sent unasked, declares what the policy takes and gives: {"ok": true, "type":
"act", "state": N, "images": {key: [C, H, W]}, "action": D, "chunk": T} (or why it cannot load).
Requests: {"op": "infer", "state": [...], "images": [{"name", "shape", "offset"}]} with the images'
uint8 H×W×3 bytes as the blob; {"op": "close"}.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

# Run by path, this file's directory is sys.path[0]: the agent's modules there must not shadow LeRobot's.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)



def _wire() -> Any:
    """The robot bridge's wire (send, receive), loaded by path: this file runs outside the agent's packages."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("lerobot_bridge", os.path.join(os.path.dirname(os.path.abspath(__file__)), "drivers", "lerobot_bridge.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


wire = _wire()


class Served:
    def __init__(self, path: str) -> None:
        import torch
        from lerobot.configs.policies import PreTrainedConfig
        from lerobot.policies.factory import get_policy_class, make_pre_post_processors

        self.torch = torch
        torch.set_num_threads(1)  # beside a control loop on a small machine: one core for inference
        config = PreTrainedConfig.from_pretrained(path)
        config.device = "cpu"
        self.policy = get_policy_class(config.type).from_pretrained(path, config=config)
        self.policy.eval()
        self.pre, self.post = make_pre_post_processors(config, pretrained_path=path)
        self.config = config
        self.image_keys = list(config.image_features)
        state = config.robot_state_feature
        self.declared = {
            "ok": True, "type": config.type, "state": int(state.shape[0]) if state is not None else 0,
            "images": {key: list(config.input_features[key].shape) for key in self.image_keys},
            "action": int(config.action_feature.shape[0]), "chunk": int(getattr(config, "n_action_steps", 1)),
        }

    def infer(self, request: dict[str, Any], blob: bytes) -> dict[str, Any]:
        import numpy as np

        torch = self.torch
        batch: dict[str, Any] = {"observation.state": torch.tensor([request["state"]], dtype=torch.float32), "task": ""}
        for image in request["images"]:
            if image["name"] not in self.image_keys:
                raise ValueError(f"the policy takes no image {image['name']!r} ({', '.join(self.image_keys)})")
            height, width, _ = image["shape"]
            pixels = np.frombuffer(blob, dtype=np.uint8, count=height * width * 3, offset=image["offset"]).reshape(height, width, 3)
            batch[image["name"]] = torch.from_numpy(pixels.copy()).permute(2, 0, 1).float().div(255.0).unsqueeze(0)
        missing = sorted(set(self.image_keys) - set(batch))
        if missing:
            raise ValueError(f"the policy needs the images {', '.join(missing)}")
        with torch.no_grad():
            chunk = self.policy.predict_action_chunk(self.pre(batch))  # (1, T, D), normalized
            actions = self.post(chunk)  # in the robot's units
        actions = actions[0, : self.declared["chunk"]].cpu().numpy().astype(float)
        return {"ok": True, "actions": actions.tolist()}


def main() -> int:
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # LeRobot's prints go to stderr, never into a reply
    inp = sys.stdin.buffer
    try:
        served = Served(sys.argv[1])
    except Exception as error:  # noqa: BLE001 - any load failure is the one thing to report
        traceback.print_exc()
        wire.send(out, {"ok": False, "error": f"cannot load the LeRobot policy {sys.argv[1] if len(sys.argv) > 1 else ''}: "
                                         f"{type(error).__name__}: {error}"})
        return 1
    wire.send(out, served.declared)
    while True:
        received = wire.receive(inp)
        if received is None:
            return 0
        request, blob = received
        if request.get("op") == "close":
            wire.send(out, {"ok": True})
            return 0
        try:
            if request.get("op") != "infer":
                raise ValueError(f"unknown op {request.get('op')!r}")
            wire.send(out, served.infer(request, blob))
        except Exception as error:  # noqa: BLE001 - a bad request is answered, the bridge goes on
            wire.send(out, {"ok": False, "error": f"{type(error).__name__}: {error}"})


if __name__ == "__main__":
    sys.exit(main())
