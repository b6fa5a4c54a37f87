"""Read-side queries: what the dashboard and the API show."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import QuerySet
from django.utils import timezone

from foreman_protocol.messages import PROTOCOL_VERSION, Snapshot
from webapp.fleet.models import ControlSession, Intervention, Robot

TELEMETRY_CACHE_KEY = "telemetry:{}"


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def lease_dict(lease: ControlSession | None, ttl_s: float | None = None) -> dict[str, Any] | None:
    if lease is None:
        return None
    return {
        "id": str(lease.id),
        "holder": lease.user.username,
        "mode": lease.mode,
        "expires_at": iso(lease.expires_at),
        "ttl_s": ttl_s if ttl_s is not None else settings.FOREMAN_LEASE_TTL_S,
    }


def active_lease(robot: Robot) -> ControlSession | None:
    return ControlSession.objects.select_related("user").filter(robot=robot, ended_at__isnull=True).first()


def robot_status(robot: Robot, lease: ControlSession | None, telemetry: dict[str, Any] | None, with_telemetry: bool = True) -> dict[str, Any]:
    station = robot.station
    status: dict[str, Any] = {
        "name": robot.name,
        "station": station.name if station else None,
        "takt_s": station.takt_s if station else None,
        "cameras": list(robot.cameras),
        "online": robot.online,
        "mode": robot.mode,
        "estopped": robot.estopped,
        "estopped_by": robot.estopped_by or None,
        "policy_version": robot.policy_version or None,
        "lease": lease_dict(lease),
        "last_seen": (telemetry or {}).get("received_at") or iso(robot.last_seen),
    }
    if with_telemetry:
        status["telemetry"] = telemetry
    return status


def robot_status_by_name(name: str, with_telemetry: bool = True) -> dict[str, Any] | None:
    robot = Robot.objects.select_related("station").filter(name=name).first()
    if robot is None:
        return None
    telemetry = cache.get(TELEMETRY_CACHE_KEY.format(name))
    return robot_status(robot, active_lease(robot), telemetry, with_telemetry)


def fleet_robots(with_telemetry: bool = True) -> list[dict[str, Any]]:
    robots = list(Robot.objects.select_related("station").order_by("name"))
    leases = {
        lease.robot_id: lease
        for lease in ControlSession.objects.select_related("user").filter(ended_at__isnull=True)
    }
    telemetry = cache.get_many([TELEMETRY_CACHE_KEY.format(r.name) for r in robots]) if robots else {}
    return [
        robot_status(r, leases.get(r.pk), telemetry.get(TELEMETRY_CACHE_KEY.format(r.name)), with_telemetry)
        for r in robots
    ]


def intervention_dict(item: Intervention) -> dict[str, Any]:
    def who(user: Any) -> str | None:
        return user.username if user is not None else None

    return {
        "id": str(item.id),
        "robot": item.robot.name,
        "trigger": item.trigger,
        "severity": item.severity,
        "state": item.state,
        "detail": item.detail,
        "raised_at": iso(item.raised_at),
        "acknowledged_at": iso(item.acknowledged_at),
        "acknowledged_by": who(item.acknowledged_by),
        "claimed_at": iso(item.claimed_at),
        "claimed_by": who(item.claimed_by),
        "resolved_at": iso(item.resolved_at),
        "resolved_by": who(item.resolved_by),
        "resolution": item.resolution or None,
        "episode": str(item.episode_id) if item.episode_id else None,
    }


def interventions_query() -> QuerySet[Intervention]:
    return Intervention.objects.select_related("robot", "acknowledged_by", "claimed_by", "resolved_by")


def open_interventions() -> list[dict[str, Any]]:
    items = interventions_query().exclude(state=Intervention.State.RESOLVED).order_by("raised_at")[:500]
    return [intervention_dict(i) for i in items]


def fleet_snapshot(user: Any) -> Snapshot:
    from webapp.fleet.roles import user_capabilities, user_roles
    from webapp.fleet.services.ice import ice_servers_for

    return Snapshot.model_validate({
        "protocol": PROTOCOL_VERSION,
        "server_time": iso(timezone.now()),
        "user": {"username": user.username, "roles": user_roles(user), "can": sorted(user_capabilities(user))},
        "ice_servers": ice_servers_for(user.username),
        "lease_ttl_s": settings.FOREMAN_LEASE_TTL_S,
        "robots": fleet_robots(),
        "interventions": open_interventions(),
    })
