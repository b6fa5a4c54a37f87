"""Policy versions: register a checkpoint so robots can download it (GET /api/robot/policies/{name})."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from webapp.fleet.models import PolicyVersion
from webapp.fleet.services.audit import audit_record
from webapp.fleet.services.errors import Conflict, NotFound

POLICY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@transaction.atomic
def policy_register(*, name: str, checkpoint: Path, parent: str | None = None, evaluation: dict[str, Any] | None = None,
                    notes: str = "", actor: str = "system", replace: bool = False) -> PolicyVersion:
    """Copy `checkpoint` under MEDIA_ROOT/policies/ and record it (with its evaluation) as a PolicyVersion."""
    if not POLICY_NAME.match(name):
        raise Conflict(f"bad policy name {name!r}: letters, digits, '.', '_' and '-' only")
    if not checkpoint.is_file():
        raise NotFound(f"checkpoint {checkpoint} does not exist")
    existing = PolicyVersion.objects.select_for_update().filter(name=name).first()
    if existing is not None and existing.checkpoint and not replace:
        raise Conflict(f"policy {name} is already registered")
    parent_version = PolicyVersion.objects.filter(name=parent).first() if parent else None
    if parent and parent_version is None:
        raise NotFound(f"no parent policy {parent!r}")
    directory = Path(settings.MEDIA_ROOT) / "policies"
    directory.mkdir(parents=True, exist_ok=True)
    stored = directory / f"{name}{checkpoint.suffix or '.pt'}"
    shutil.copyfile(checkpoint, stored)
    policy, _ = PolicyVersion.objects.update_or_create(name=name, defaults={
        "checkpoint": str(stored.relative_to(settings.MEDIA_ROOT)), "sha256": file_sha256(stored),
        "parent": parent_version, "evaluation": evaluation or {}, "notes": notes,
    })
    audit_record(actor=actor, action="policy_registered", policy=name, parent=parent or "", sha256=policy.sha256,
                 evaluation={k: v for k, v in (evaluation or {}).items() if k != "failure_modes"})
    return policy
