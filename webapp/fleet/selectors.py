"""Read-side queries: what the dashboard and the API show."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import QuerySet
from django.utils import timezone

from foreman_protocol.messages import PROTOCOL_VERSION, Snapshot
from webapp.fleet.models import AuditEvent, ControlSession, Episode, Intervention, Robot, Station
from webapp.fleet.paging import page

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
        "retired": robot.retired_at is not None,
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
    robots = list(Robot.objects.select_related("station").filter(retired_at__isnull=True).order_by("name"))
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


def interventions_list(*, state: str | None = None, robot: str | None = None, open_only: bool = False,
                       limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    """Interventions, newest first, optionally only one state, the unresolved ones, or one robot's."""
    items = interventions_query()
    if state:
        items = items.filter(state=state)
    if open_only:
        items = items.exclude(state=Intervention.State.RESOLVED)
    if robot:
        items = items.filter(robot__name=robot)
    return [intervention_dict(i) for i in items.order_by("-raised_at")[page(limit, offset)]]


def intervention_by_id(intervention_id: Any) -> dict[str, Any]:
    return intervention_dict(interventions_query().get(pk=intervention_id))


def open_interventions() -> list[dict[str, Any]]:
    items = interventions_query().exclude(state=Intervention.State.RESOLVED).order_by("raised_at")[:500]
    return [intervention_dict(i) for i in items]


def stations_list() -> list[dict[str, Any]]:
    stations = Station.objects.select_related("line__site").prefetch_related("robots").filter(retired_at__isnull=True).order_by("name")
    return [
        {"name": s.name, "line": s.line.name, "site": s.line.site.name, "task": s.task, "takt_s": s.takt_s,
         "robots": sorted(r.name for r in s.robots.all() if r.retired_at is None)}
        for s in stations
    ]


def episode_dict(e: Episode) -> dict[str, Any]:
    return {
        "id": str(e.id), "robot": e.robot.name, "station": e.station.name if e.station else None,
        "policy_version": e.policy_version, "cycle_index": e.cycle_index, "seed": e.seed,
        "started_at": iso(e.started_at), "ended_at": iso(e.ended_at), "duration_s": e.duration_s,
        "outcome": e.outcome, "failure_mode": e.failure_mode, "intervened": e.intervened,
        "uploaded": hasattr(e, "upload"),
    }


def episodes_list(*, robot: str | None = None, outcome: str | None = None, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    """Episodes, newest first, optionally one robot's or one outcome's."""
    items = Episode.objects.select_related("robot", "station", "upload")
    if robot:
        items = items.filter(robot__name=robot)
    if outcome:
        items = items.filter(outcome=outcome)
    return [episode_dict(e) for e in items.order_by("-started_at")[page(limit, offset)]]


def audit_list(*, robot: str | None = None, actor: str | None = None, action: str | None = None,
               limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    """The audit log, newest first, optionally one robot's, one actor's or one action's."""
    items = AuditEvent.objects.select_related("robot")
    if robot:
        items = items.filter(robot__name=robot)
    if actor:
        items = items.filter(actor=actor)
    if action:
        items = items.filter(action=action)
    return [
        {"id": a.id, "at": iso(a.at), "actor": a.actor, "action": a.action, "robot": a.robot.name if a.robot else None,
         "source": a.source, "detail": a.detail}
        for a in items.order_by("-at", "-id")[page(limit, offset)]
    ]


def robot_online(name: str) -> bool | None:
    """Whether the robot is connected; None if there is no such robot."""
    return Robot.objects.filter(name=name).values_list("online", flat=True).first()


def robot_online_cameras(name: str) -> tuple[bool, list[str]] | None:
    """(connected, camera names) of a robot; None if there is no such robot."""
    row = Robot.objects.filter(name=name).values_list("online", "cameras").first()
    return None if row is None else (bool(row[0]), list(row[1] or []))


def robot_features(name: str) -> dict[str, Any] | None:
    """What a robot declared in its latest `hello` (`features`: {} if nothing); None if there is no such robot."""
    row = Robot.objects.filter(name=name).values_list("features", flat=True).first()
    return None if row is None else dict(row or {})


def fleet_snapshot(user: Any) -> Snapshot:
    from webapp.fleet.roles import user_capabilities, user_roles
    from webapp.fleet.services.ice import ice_servers_for

    return Snapshot.model_validate({
        "protocol": PROTOCOL_VERSION,
        "server_time": iso(timezone.now()),
        "user": {"username": user.username, "roles": user_roles(user), "can": sorted(user_capabilities(user))},
        "ice_servers": ice_servers_for(user.username),
        "ice_transport_policy": settings.FOREMAN_ICE_TRANSPORT_POLICY,
        "sfu": bool(settings.FOREMAN_SFU_URL),
        "lease_ttl_s": settings.FOREMAN_LEASE_TTL_S,
        "robots": fleet_robots(),
        "interventions": open_interventions(),
    })


def fleet_layout() -> dict[str, Any]:
    """What an admin sees: every active site, its lines, their stations and the robots on each, and
    the robots on no station; per robot whether it has a token (its prefix, never the token)."""
    from webapp.fleet.models import Line, Site

    def robot_row(robot: Robot) -> dict[str, Any]:
        return {"name": robot.name, "station": robot.station.name if robot.station else None, "online": robot.online,
                "token_prefix": robot.token_prefix or None, "last_seen": iso(robot.last_seen),
                "policy_version": robot.policy_version or None,
                "declared": _declared(robot.features)}

    robots = list(Robot.objects.select_related("station").filter(retired_at__isnull=True).order_by("name"))
    by_station: dict[int | None, list[dict[str, Any]]] = {}
    for robot in robots:
        by_station.setdefault(robot.station_id, []).append(robot_row(robot))
    stations = Station.objects.filter(retired_at__isnull=True).order_by("name")
    by_line: dict[int, list[dict[str, Any]]] = {}
    for station in stations:
        by_line.setdefault(station.line_id, []).append(
            {"name": station.name, "task": station.task, "takt_s": station.takt_s, "robots": by_station.get(station.pk, [])})
    lines = Line.objects.filter(retired_at__isnull=True).order_by("name")
    by_site: dict[int, list[dict[str, Any]]] = {}
    for line in lines:
        by_site.setdefault(line.site_id, []).append({"name": line.name, "stations": by_line.get(line.pk, [])})
    sites = [{"name": site.name, "lines": by_site.get(site.pk, [])} for site in Site.objects.filter(retired_at__isnull=True).order_by("name")]
    # A robot whose station was retired from under it cannot happen (retiring refuses); one on no station can.
    return {"sites": sites, "unassigned": by_station.get(None, [])}


def _declared(features: dict[str, Any]) -> str | None:
    """What the robot last declared about itself, in a few words (its action count and control rate)."""
    if not features:
        return None
    return f"{len(features.get('action', []))} actions at {features.get('control_hz', 0):g} Hz"
