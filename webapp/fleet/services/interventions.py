"""Intervention lifecycle: raised → acknowledged → claimed → resolved, with who and when."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from webapp.fleet import realtime
from webapp.fleet.models import Episode, Intervention, Robot
from webapp.fleet.roles import user_can
from webapp.fleet.services.audit import audit_record
from webapp.fleet.services.errors import Conflict, Forbidden, NotFound


def intervention_raise(*, robot_name: str, intervention_id: str, trigger: str, severity: str, detail: str, episode_id: str | None) -> Intervention:
    """A robot asks for help. Idempotent per intervention id (the agent may resend after reconnecting)."""
    with transaction.atomic():
        robot = Robot.objects.get(name=robot_name)
        existing = Intervention.objects.filter(pk=intervention_id).first()
        if existing is not None:
            if existing.robot_id != robot.pk:
                raise Conflict("intervention id already used by another robot")
            return existing
        episode = Episode.objects.filter(pk=episode_id, robot=robot).first() if episode_id else None
        item = Intervention.objects.create(
            id=uuid.UUID(intervention_id),
            robot=robot,
            episode=episode,
            trigger=trigger,
            severity=severity,
            detail=detail[:500],
            raised_at=timezone.now(),
        )
        if episode is not None and not episode.intervened:
            Episode.objects.filter(pk=episode.pk).update(intervened=True)
        audit_record(actor=f"robot:{robot.name}", action="intervention_raised", robot=robot, intervention=str(item.id), trigger=trigger)
        realtime.broadcast_intervention(item.id)
        return item


def intervention_acknowledge(*, intervention_id: str, user: Any, source: str = "") -> Intervention:
    if not user_can(user, "ack"):
        raise Forbidden(f"{user.username} may not acknowledge interventions")
    with transaction.atomic():
        item = Intervention.objects.select_for_update().select_related("robot").filter(pk=intervention_id).first()
        if item is None:
            raise NotFound(f"no intervention {intervention_id}")
        if item.state == Intervention.State.RESOLVED:
            raise Conflict("intervention is already resolved")
        if item.acknowledged_at is None:
            item.acknowledged_at = timezone.now()
            item.acknowledged_by = user
            if item.state == Intervention.State.RAISED:
                item.state = Intervention.State.ACKNOWLEDGED
            item.save()
            audit_record(actor=user.username, action="intervention_acknowledged", robot=item.robot, source=source, intervention=str(item.id))
            realtime.broadcast_intervention(item.id)
        return item
