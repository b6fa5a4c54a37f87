"""Policies, rollouts (canary → promote → rollback) and retraining rounds, at /api/learning/.

Every operation here needs an entry in tests/learning/api_permissions.py (the permission matrix).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router, Schema

from webapp.fleet.api import require, source
from webapp.learning import selectors
from webapp.learning.models import Rollout
from webapp.learning.services import rollouts

router = Router(tags=["learning"])


class CanaryIn(Schema):
    robot: str


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


def _uuid(value: str) -> str:
    import uuid

    from webapp.fleet.services.errors import NotFound

    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise NotFound(f"no rollout {value!r}") from None
