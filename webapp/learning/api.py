"""Policies, rollouts (canary → promote → rollback) and retraining rounds, at /api/learning/.

Every operation here needs an entry in tests/learning/api_permissions.py (the permission matrix).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router, Schema

from webapp.fleet.api_auth import require, source
from webapp.learning import selectors
from webapp.learning.models import RetrainingRound, Rollout
from webapp.learning.services import retraining, rollouts

router = Router(tags=["learning"])


class CanaryIn(Schema):
    robot: str


class RetrainIn(Schema):
    export: str  # a finished export: its episodes and their labels are the round's data
    base_policy: str | None = None  # default: the policy most of the episodes ran
    name: str | None = None  # the new version's name (default <base>-r1, -r2, …)
    options: dict[str, int] = {}  # epochs, rehearsal_episodes, eval_episodes, eval_seed, seed


@router.get("/policies")
def policies(request: HttpRequest) -> Any:
    require(request, "view")
    return {"policies": selectors.policy_list(), "rollouts": selectors.rollout_list()}


@router.post("/policies/{name}/rollout")
def start_rollout(request: HttpRequest, name: str, body: CanaryIn) -> Any:
    user = require(request, "rollout")
    rollout = rollouts.rollout_start(policy_name=name, canary_robot=body.robot, actor=user, source=source(request))
    return selectors.rollout_dict(rollout)


@router.post("/rollouts/{rollout_id}/promote")
def promote(request: HttpRequest, rollout_id: str) -> Any:
    user = require(request, "rollout")
    rollout = rollouts.rollout_promote(rollout_id=_uuid(rollout_id), actor=user, source=source(request))
    return selectors.rollout_dict(rollout)


@router.post("/rollouts/{rollout_id}/rollback")
def rollback(request: HttpRequest, rollout_id: str) -> Any:
    user = require(request, "rollout")
    rollout = rollouts.rollout_rollback(rollout_id=_uuid(rollout_id), actor=user, source=source(request))
    return selectors.rollout_dict(rollout)


@router.get("/rollouts/{rollout_id}")
def rollout_detail(request: HttpRequest, rollout_id: str) -> Any:
    require(request, "view")
    rollout = Rollout.objects.select_related("policy", "canary", "station").filter(pk=_uuid(rollout_id)).first()
    if rollout is None:
        from webapp.fleet.services.errors import NotFound

        raise NotFound(f"no rollout {rollout_id}")
    return selectors.rollout_dict(rollout)


@router.post("/retraining")
def start_retraining(request: HttpRequest, body: RetrainIn) -> Any:
    user = require(request, "rollout")
    round_ = retraining.retraining_start(user=user, export_id=_uuid(body.export, "export"), base_policy=body.base_policy,
                                         name=body.name, options=body.options, source=source(request))
    return retraining.retraining_dict(round_)


@router.get("/retraining")
def retraining_list(request: HttpRequest) -> Any:
    """The latest rounds, and the finished LeRobot exports a new round can learn from."""
    require(request, "view")
    return {"rounds": [retraining.retraining_dict(r) for r in RetrainingRound.objects.select_related("result")[:50]],
            "exports": retraining.retraining_sources()}


@router.get("/retraining/{round_id}")
def retraining_detail(request: HttpRequest, round_id: str) -> Any:
    require(request, "view")
    round_ = RetrainingRound.objects.select_related("result").filter(pk=_uuid(round_id, "retraining round")).first()
    if round_ is None:
        from webapp.fleet.services.errors import NotFound

        raise NotFound(f"no retraining round {round_id}")
    return retraining.retraining_dict(round_)


def _uuid(value: str, what: str = "rollout") -> str:
    import uuid

    from webapp.fleet.services.errors import NotFound

    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise NotFound(f"no {what} {value!r}") from None
