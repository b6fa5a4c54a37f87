"""Read side of policies and rollouts (for the API and the policies page)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from webapp.fleet.models import PolicyVersion, Robot
from webapp.fleet.selectors import iso
from webapp.fleet.services.errors import NotFound
from webapp.learning.models import RetrainingRound, Rollout, RolloutTarget


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    sha256: str


def policy_checkpoint(version: str) -> Checkpoint:
    """The stored checkpoint file of a policy version, for robots to download; never a path outside
    MEDIA_ROOT. NotFound when the version has none or its file is gone."""
    policy = PolicyVersion.objects.filter(name=version).exclude(checkpoint="").first()
    if policy is None:
        raise NotFound(f"no checkpoint for policy {version!r}")
    root = Path(settings.MEDIA_ROOT).resolve()
    path = (root / policy.checkpoint).resolve()
    if root not in path.parents or not path.is_file():
        raise NotFound(f"the checkpoint of {version!r} is missing on the server")
    return Checkpoint(path=path, sha256=policy.sha256)


def target_dict(target: RolloutTarget) -> dict[str, Any]:
    return {
        "id": str(target.id), "robot": target.robot.name, "purpose": target.purpose, "policy_version": target.policy_version,
        "previous_version": target.previous_version, "state": target.state, "error": target.error,
        "sent_at": iso(target.sent_at), "acked_at": iso(target.acked_at) if target.acked_at else None,
    }


def rollout_dict(rollout: Rollout) -> dict[str, Any]:
    return {
        "id": str(rollout.id), "policy": rollout.policy.name, "canary": rollout.canary.name, "stage": rollout.stage,
        "station": rollout.station.name if rollout.station else None, "created_by": rollout.created_by,
        "created_at": iso(rollout.created_at), "promoted_at": iso(rollout.promoted_at) if rollout.promoted_at else None,
        "rolled_back_at": iso(rollout.rolled_back_at) if rollout.rolled_back_at else None,
        "targets": [target_dict(t) for t in rollout.targets.select_related("robot").all()],
    }


def policy_list() -> list[dict[str, Any]]:
    running: dict[str, list[str]] = {}
    for name, version in Robot.objects.order_by("name").values_list("name", "policy_version"):
        running.setdefault(version, []).append(name)
    policies = PolicyVersion.objects.select_related("parent").order_by("-created_at")
    return [{
        "name": p.name, "created_at": iso(p.created_at), "parent": p.parent.name if p.parent else None,
        "rollable": bool(p.checkpoint), "sha256": p.sha256, "evaluation": p.evaluation, "notes": p.notes,
        "robots": running.get(p.name, []),
    } for p in policies]


def rollout_list(limit: int = 20) -> list[dict[str, Any]]:
    return [rollout_dict(r) for r in Rollout.objects.select_related("policy", "canary", "station")[:limit]]


def retraining_dict(round_: RetrainingRound) -> dict[str, Any]:
    return {
        "id": str(round_.id), "base_policy": round_.base_policy, "episodes": len(round_.episode_ids), "state": round_.state,
        "progress": round_.progress, "stage": round_.stage, "error": round_.error,
        "result": round_.result.name if round_.result else None, "report": round_.report,
        "created_at": iso(round_.created_at), "finished_at": iso(round_.finished_at) if round_.finished_at else None,
    }
