"""Policy versions: register a checkpoint so robots can download it (GET /api/robot/policies/{name})."""

from __future__ import annotations

import hashlib
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from webapp.fleet.models import PolicyVersion
from webapp.fleet.services.audit import audit_record
from webapp.fleet.services.errors import Conflict, Invalid, NotFound

POLICY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# What lerobot-train writes into a checkpoint's pretrained_model directory; the weights and config
# are required, the processors (the dataset's normalization) go along when present.
LEROBOT_REQUIRED = ("config.json", "model.safetensors")
LEROBOT_ZIP_DATE = (2026, 1, 1, 0, 0, 0)  # fixed: the same checkpoint zips to the same bytes (and sha256)


def zip_lerobot_checkpoint(directory: Path, target: Path) -> None:
    """A LeRobot checkpoint directory as one zip (its files at the root), the form a robot downloads."""
    missing = [name for name in LEROBOT_REQUIRED if not (directory / name).is_file()]
    if missing:
        raise Invalid(f"{directory} is not a LeRobot checkpoint: no {', '.join(missing)} (lerobot-train writes "
                      "OUTPUT/checkpoints/last/pretrained_model)")
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as archive:
        for path in sorted(p for p in directory.iterdir() if p.is_file()):
            info = zipfile.ZipInfo(path.name, date_time=LEROBOT_ZIP_DATE)
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())


@transaction.atomic
def policy_register(*, name: str, checkpoint: Path, parent: str | None = None, evaluation: dict[str, Any] | None = None,
                    notes: str = "", actor: str = "system", replace: bool = False) -> PolicyVersion:
    """Copy `checkpoint` under MEDIA_ROOT/policies/ and record it (with its evaluation) as a PolicyVersion.
    A file is a Foreman or TorchScript checkpoint; a directory a LeRobot checkpoint, stored zipped
    (an agent runs it with LeRobot: robot_agent/lerobot_policy.py)."""
    if not POLICY_NAME.match(name):
        raise Conflict(f"bad policy name {name!r}: letters, digits, '.', '_' and '-' only")
    if not checkpoint.is_file() and not checkpoint.is_dir():
        raise NotFound(f"checkpoint {checkpoint} does not exist")
    existing = PolicyVersion.objects.select_for_update().filter(name=name).first()
    if existing is not None and existing.checkpoint and not replace:
        raise Conflict(f"policy {name} is already registered")
    parent_version = PolicyVersion.objects.filter(name=parent).first() if parent else None
    if parent and parent_version is None:
        raise NotFound(f"no parent policy {parent!r}")
    directory = Path(settings.MEDIA_ROOT) / "policies"
    directory.mkdir(parents=True, exist_ok=True)
    if checkpoint.is_dir():
        stored = directory / f"{name}.lerobot.zip"
        zip_lerobot_checkpoint(checkpoint, stored)
    else:
        stored = directory / f"{name}{checkpoint.suffix or '.pt'}"
        shutil.copyfile(checkpoint, stored)
    policy, _ = PolicyVersion.objects.update_or_create(name=name, defaults={
        "checkpoint": str(stored.relative_to(settings.MEDIA_ROOT)), "sha256": file_sha256(stored),
        "parent": parent_version, "evaluation": evaluation or {}, "notes": notes,
    })
    audit_record(actor=actor, action="policy_registered", policy=name, parent=parent or "", sha256=policy.sha256,
                 evaluation={k: v for k, v in (evaluation or {}).items() if k != "failure_modes"})
    return policy
