"""Rollouts: a new policy goes to one canary robot first, then (promoted) to the rest of its station;
one call rolls every robot back to what it ran before. Robots ack each policy_rollout command
(`command_ack`, docs/protocol.md) and switch between cycles, never mid-cycle."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from foreman_protocol.messages import PolicyRollout
from webapp.fleet import realtime
from webapp.fleet.models import PolicyVersion, Robot
from webapp.fleet.services.audit import audit_record
from webapp.fleet.services.errors import Conflict, NotFound, RobotOffline
from webapp.learning.models import Rollout, RolloutTarget


def _actor_name(actor: Any) -> str:
    return actor if isinstance(actor, str) else getattr(actor, "username", str(actor))


def _send(target: RolloutTarget, policy: PolicyVersion) -> None:
    realtime.to_robot(target.robot.name, PolicyRollout(
        id=str(target.id), policy_version=policy.name, url=f"/api/robot/policies/{policy.name}", sha256=policy.sha256,
    ))


def _station_robots(canary: Robot) -> list[Robot]:
    robots = Robot.objects.filter(station=canary.station) if canary.station_id else Robot.objects.all()
    return list(robots.order_by("name"))


@transaction.atomic
def rollout_start(*, policy_name: str, canary_robot: str, actor: Any, source: str = "") -> Rollout:
    """Send `policy_name` to one online robot; the rest of its station keeps its policy until promoted."""
    policy = PolicyVersion.objects.filter(name=policy_name).first()
    if policy is None or not policy.checkpoint:
        raise NotFound(f"no rollable policy {policy_name!r} (it needs a registered checkpoint)")
    robot = Robot.objects.select_for_update().filter(name=canary_robot).first()
    if robot is None:
        raise NotFound(f"no robot named {canary_robot!r}")
    if not robot.online:
        raise RobotOffline(f"{robot.name} is offline: a canary must be watched while it runs")
    active = Rollout.objects.filter(station=robot.station, stage=Rollout.Stage.CANARY).first()
    if active is not None:
        raise Conflict(f"rollout of {active.policy.name} to {active.canary.name} is still in canary: promote or roll it back first")
    rollout = Rollout.objects.create(policy=policy, station=robot.station, canary=robot, created_by=_actor_name(actor))
    target = RolloutTarget.objects.create(rollout=rollout, robot=robot, policy_version=policy.name, previous_version=robot.policy_version)
    _send(target, policy)
    audit_record(actor=_actor_name(actor), action="policy_canary", robot=robot, source=source, policy=policy.name,
                 previous=robot.policy_version, rollout=str(rollout.id))
    return rollout


@transaction.atomic
def rollout_promote(*, rollout_id: uuid.UUID | str, actor: Any, source: str = "") -> Rollout:
    """After the canary loaded the policy: send it to every other online robot of the station."""
    rollout = Rollout.objects.select_for_update().select_related("policy", "canary").filter(pk=rollout_id).first()
    if rollout is None:
        raise NotFound(f"no rollout {rollout_id}")
    if rollout.stage != Rollout.Stage.CANARY:
        raise Conflict(f"this rollout is {rollout.stage}; only a canary can be promoted")
    canary = rollout.targets.filter(robot=rollout.canary, purpose=RolloutTarget.Purpose.ROLLOUT).first()
    if canary is None or canary.state not in {RolloutTarget.State.LOADED, RolloutTarget.State.LIVE}:
        state = canary.state if canary else "missing"
        raise Conflict(f"the canary {rollout.canary.name} has not loaded {rollout.policy.name} yet ({state})")
    skipped: list[str] = []
    for robot in _station_robots(rollout.canary):
        if robot.pk == rollout.canary_id:
            continue
        if not robot.online:
            skipped.append(robot.name)
            continue
        target = RolloutTarget.objects.create(rollout=rollout, robot=robot, policy_version=rollout.policy.name,
                                              previous_version=robot.policy_version)
        _send(target, rollout.policy)
    rollout.stage = Rollout.Stage.FLEET
    rollout.promoted_at = timezone.now()
    rollout.save(update_fields=["stage", "promoted_at"])
    audit_record(actor=_actor_name(actor), action="policy_promoted", robot=None, source=source, policy=rollout.policy.name,
                 rollout=str(rollout.id), offline_skipped=skipped)
    return rollout


@transaction.atomic
def rollout_rollback(*, rollout_id: uuid.UUID | str, actor: Any, source: str = "") -> Rollout:
    """Every robot this rollout reached goes back to the version it ran before (one click)."""
    rollout = Rollout.objects.select_for_update().select_related("policy").filter(pk=rollout_id).first()
    if rollout is None:
        raise NotFound(f"no rollout {rollout_id}")
    if rollout.stage == Rollout.Stage.ROLLED_BACK:
        raise Conflict("this rollout is already rolled back")
    reached = list(rollout.targets.filter(purpose=RolloutTarget.Purpose.ROLLOUT).exclude(state=RolloutTarget.State.FAILED)
                   .select_related("robot"))
    missing = sorted({t.previous_version or "(none)" for t in reached
                      if not PolicyVersion.objects.filter(name=t.previous_version).exclude(checkpoint="").exists()})
    if missing:
        raise Conflict(f"cannot roll back: no checkpoint registered for {', '.join(missing)}")
    for target in reached:
        previous = PolicyVersion.objects.get(name=target.previous_version)
        back = RolloutTarget.objects.create(rollout=rollout, robot=target.robot, purpose=RolloutTarget.Purpose.ROLLBACK,
                                            policy_version=previous.name, previous_version=rollout.policy.name)
        _send(back, previous)
    rollout.stage = Rollout.Stage.ROLLED_BACK
    rollout.rolled_back_at = timezone.now()
    rollout.save(update_fields=["stage", "rolled_back_at"])
    audit_record(actor=_actor_name(actor), action="policy_rolled_back", robot=None, source=source, policy=rollout.policy.name,
                 rollout=str(rollout.id), robots=[t.robot.name for t in reached])
    return rollout


def rollout_command_acked(*, robot_name: str, command_id: str, ok: bool, error: str | None) -> RolloutTarget | None:
    """The agent's command_ack for a policy_rollout (None when the ack was for another command)."""
    try:
        key = uuid.UUID(str(command_id))
    except ValueError:
        return None
    with transaction.atomic():
        target = RolloutTarget.objects.select_for_update().select_related("robot").filter(pk=key, robot__name=robot_name).first()
        if target is None:
            return None
        if target.state == RolloutTarget.State.SENT:
            target.state = RolloutTarget.State.LOADED if ok else RolloutTarget.State.FAILED
            target.error = "" if ok else (error or "refused")[:500]
            target.acked_at = timezone.now()
            target.save(update_fields=["state", "error", "acked_at"])
            audit_record(actor=f"robot:{robot_name}", action="policy_loaded" if ok else "policy_load_failed", robot=target.robot,
                         policy=target.policy_version, error=target.error)
        return target


def rollout_cycle_started(*, robot_name: str, policy_version: str) -> None:
    """A cycle started on `policy_version`: the loaded rollout to it is live."""
    if policy_version:
        RolloutTarget.objects.filter(robot__name=robot_name, policy_version=policy_version,
                                     state=RolloutTarget.State.LOADED).update(state=RolloutTarget.State.LIVE)
