"""The one way to get a policy from a spec string (`--policy`, rollouts, evaluation, retraining):

- `expert`: the sim's scripted expert (it needs the simulator's ground truth);
- `xr0://HOST:PORT[?task_id=…&prefix=1]`: a Xiaomi-Robotics-0 deploy server;
- `ws://HOST:PORT`, `wss://HOST:PORT`: an openpi policy server;
- any other `SCHEME://…` added with `register_policy_scheme`;
- `lerobot:PATH`: a LeRobot checkpoint directory, which the agent runs in LeRobot's own environment
  (robot_agent/lerobot_policy.py: it needs the robot's cameras, so the agent builds it, not this);
- anything else is a file: a Foreman visuomotor checkpoint or a TorchScript module.

Implementations are imported when a spec asks for them, so remote policies load without torch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from foreman_learning.policies.base import Policy

EXPERT = "expert"
LEROBOT_PREFIX = "lerobot:"
SchemeFactory = Callable[..., Policy]  # (spec, **remote_options) -> Policy


def _xr0(spec: str, **options: Any) -> Policy:
    from foreman_learning.policies.remote import xr0_from_spec

    return xr0_from_spec(spec, **options)


def _openpi(spec: str, **options: Any) -> Policy:
    from foreman_learning.policies.remote import openpi_from_spec

    return openpi_from_spec(spec, **options)


_SCHEMES: dict[str, SchemeFactory] = {"xr0": _xr0, "ws": _openpi, "wss": _openpi}


def register_policy_scheme(scheme: str, factory: SchemeFactory) -> None:
    """`load_policy("scheme://…", **options)` calls `factory(spec, **options)`."""
    _SCHEMES[scheme] = factory


def is_file_spec(spec: str) -> bool:
    """The spec names a checkpoint file (not the expert, not a scheme, not a LeRobot checkpoint)."""
    return spec != EXPERT and "://" not in spec and not spec.startswith(LEROBOT_PREFIX)


def load_policy(spec: str, **remote_options: Any) -> Policy:
    """The policy `spec` names. `remote_options` (the agent's language and action_dim) go to a
    scheme's factory; files and the expert need none. Raises FileNotFoundError for a missing file,
    ValueError for a spec or file it cannot use."""
    if spec == EXPERT:
        from foreman_learning.policies.expert import ExpertPolicy

        return ExpertPolicy()
    scheme, separator, _ = spec.partition("://")
    if separator:
        if scheme not in _SCHEMES:
            raise ValueError(f"unknown policy scheme {scheme}:// (known: {', '.join(sorted(_SCHEMES))})")
        return _SCHEMES[scheme](spec, **remote_options)
    if spec.startswith(LEROBOT_PREFIX):
        raise ValueError(f"{spec}: a LeRobot policy runs in the agent (python -m robot_agent --policy {spec})")
    return _load_file(Path(spec))


def _load_file(path: Path) -> Policy:
    if not path.is_file():
        raise FileNotFoundError(str(path))
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic != b"PK\x03\x04":  # torch.save and TorchScript both write zip archives
        raise ValueError(f"{path}: not a PyTorch checkpoint")
    from foreman_learning.policies.torchscript import TorchScriptPolicy
    from foreman_learning.policies.visuomotor import load_checkpoint_policy

    try:
        return load_checkpoint_policy(path)
    except Exception as error:  # noqa: BLE001 - not ours: try TorchScript next
        try:
            return TorchScriptPolicy(str(path))
        except Exception:  # noqa: BLE001 - neither loader's errors are a fixed set; the message keeps the first
            raise ValueError(f"{path}: neither a Foreman checkpoint nor TorchScript ({error})") from None
