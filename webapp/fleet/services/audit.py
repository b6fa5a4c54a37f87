from __future__ import annotations

from typing import Any

from django.utils import timezone

from webapp.fleet.models import AuditEvent, Robot


def audit_record(*, actor: str, action: str, robot: Robot | None = None, source: str = "", **detail: Any) -> AuditEvent:
    return AuditEvent.objects.create(
        at=timezone.now(), actor=actor[:150], action=action, robot=robot, source=source[:200], detail=detail
    )
