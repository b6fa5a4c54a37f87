from __future__ import annotations

from typing import Any

from django.utils import timezone

from webapp.fleet.models import AuditEvent, Robot


def audit_record(*, actor: str, action: str, robot: Robot | None = None, source: str = "", **detail: Any) -> AuditEvent:
    return AuditEvent.objects.create(
        at=timezone.now(), actor=actor[:150], action=action, robot=robot, source=source[:200], detail=detail
    )


def robot_audit_record(*, robot_name: str, action: str, source: str = "", **detail: Any) -> AuditEvent:
    """An event a robot reports about itself (a fault, a refused command), recorded under its name."""
    robot = Robot.objects.filter(name=robot_name).first()
    return audit_record(actor=f"robot:{robot_name}", action=action, robot=robot, source=source, **detail)
