"""Robot lifecycle: tokens, connections, reported state and episodes."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from foreman_protocol.messages import (
    GENERIC_FAILURE_MODES,
    PROTOCOL_VERSION,
    CycleEnded,
    CycleStarted,
    Hello,
    LeaseInfo,
    RobotFeatures,
    RobotMode,
    StationInfo,
    Welcome,
)
from webapp.fleet import realtime
from webapp.fleet.models import ControlSession, Episode, Robot
from webapp.fleet.selectors import iso, lease_dict
from webapp.fleet.services.audit import audit_record
from webapp.fleet.services.custody import robot_estop
from webapp.fleet.services.errors import Invalid, NotFound
from webapp.fleet.services.ice import ice_servers_for
from webapp.fleet.tokens import ROBOT_TOKEN_PREFIX, hash_token, new_token


def robot_issue_token(*, robot_name: str, actor: str = "admin") -> str:
    """Make a new token for the robot (the old one stops working) and return it: it is shown once."""
    robot = Robot.objects.filter(name=robot_name, retired_at__isnull=True).first()
    if robot is None:
        raise NotFound(f"no robot named {robot_name!r}")
    token = new_token(ROBOT_TOKEN_PREFIX)
    robot.token_hash = hash_token(token)
    robot.token_prefix = token[:8]
    robot.save(update_fields=["token_hash", "token_prefix"])
    audit_record(actor=actor, action="robot_token_issued", robot=robot, prefix=robot.token_prefix)
    return token


def robot_connected(*, robot_name: str, hello: Hello, channel: str, source: str = "") -> tuple[Welcome, str]:
    """Record a robot's `hello`; return the `welcome` message and the channel of a replaced connection."""
    with transaction.atomic():
        robot = Robot.objects.select_for_update(of=("self",)).select_related("station").get(name=robot_name)
        previous = robot.connection if robot.online and robot.connection != channel else ""
        robot.online = True
        robot.connection = channel
        robot.cameras = list(hello.cameras)
        robot.capabilities = list(hello.capabilities)
        robot.features = hello.features.model_dump(mode="json") if hello.features is not None else {}
        robot.policy_version = hello.policy_version or ""
        robot.mode = hello.mode
        robot.last_seen = timezone.now()
        robot.save()
        audit_record(actor=f"robot:{robot.name}", action="robot_connected", robot=robot, source=source, policy_version=robot.policy_version)
        lease = ControlSession.objects.select_related("user").filter(robot=robot, ended_at__isnull=True).first()
        if lease is not None and lease.expires_at <= timezone.now():
            lease = None  # the lease timer ends it; never hand a dead lease to the robot
        if hello.estopped:
            lease = None  # the robot's own latch: robot_estop below ends the lease, never hand it over
        welcome = Welcome(
            robot=robot.name,
            protocol=PROTOCOL_VERSION,
            server_time=iso(timezone.now()) or "",
            ice_servers=ice_servers_for(f"robot:{robot.name}"),
            ice_transport_policy=settings.FOREMAN_ICE_TRANSPORT_POLICY,
            estopped=robot.estopped or hello.estopped,
            lease=LeaseInfo.model_validate(lease_dict(lease)) if lease is not None else None,
            lease_ttl_s=settings.FOREMAN_LEASE_TTL_S,
            station=StationInfo(name=robot.station.name, takt_s=robot.station.takt_s) if robot.station else None,
        )
        realtime.broadcast_robot(robot.name)
        if hello.open_interventions is not None:
            _resolve_forgotten_interventions(robot, set(hello.open_interventions))
    if hello.estopped and not robot.estopped:
        # The robot's own latch is set (e.g. its e-stop button): the server latches too.
        robot_estop(robot_name=robot.name, actor=None, reason="reported by robot", source=source)
    return welcome, previous


def _resolve_forgotten_interventions(robot: Robot, still_open: set[str]) -> None:
    """Interventions the robot no longer waits on (its agent restarted) would wait forever: close them."""
    from webapp.fleet.models import Intervention

    now = timezone.now()
    # Only what the agent itself raises; not the server's own (supervisor, e-stop), nor one a person is handling.
    raised_by_robot = [Intervention.Trigger.POLICY_UNCERTAINTY, Intervention.Trigger.FAULT, Intervention.Trigger.TAKT_OVERRUN]
    stale = (Intervention.objects.filter(robot=robot, trigger__in=raised_by_robot)
             .exclude(state__in=[Intervention.State.RESOLVED, Intervention.State.CLAIMED]).exclude(id__in=still_open))
    for item in stale:
        item.state, item.resolved_at, item.resolution = Intervention.State.RESOLVED, now, "gone_on_robot"
        item.save(update_fields=["state", "resolved_at", "resolution"])
        audit_record(actor=f"robot:{robot.name}", action="intervention_resolved", robot=robot, intervention=str(item.id),
                     resolution="gone_on_robot")
        realtime.broadcast_intervention(item.id)


def robot_disconnected(*, robot_name: str, channel: str) -> None:
    with transaction.atomic():
        robot = Robot.objects.select_for_update().filter(name=robot_name).first()
        if robot is None or robot.connection != channel:
            return  # a newer connection already replaced this one
        robot.online = False
        robot.connection = ""
        robot.last_seen = timezone.now()
        robot.save(update_fields=["online", "connection", "last_seen"])
        audit_record(actor=f"robot:{robot.name}", action="robot_disconnected", robot=robot)
        realtime.broadcast_robot(robot.name)


def robot_set_mode(*, robot_name: str, mode: RobotMode) -> None:
    updated = Robot.objects.filter(name=robot_name).exclude(mode=mode).update(mode=mode)
    if updated:
        realtime.broadcast_robot(robot_name)


def episode_started(*, robot_name: str, message: CycleStarted) -> Episode:
    robot = Robot.objects.select_related("station").get(name=robot_name)
    episode, _ = Episode.objects.get_or_create(
        id=uuid.UUID(message.episode),
        defaults={
            "robot": robot,
            "station": robot.station,
            "policy_version": message.policy_version or robot.policy_version,
            "cycle_index": message.cycle_index,
            "seed": message.seed,
            "started_at": timezone.now(),
        },
    )
    if message.policy_version and message.policy_version != robot.policy_version:
        # A rolled-out policy goes live between cycles: the fleet shows what really runs.
        robot.policy_version = message.policy_version
        robot.save(update_fields=["policy_version"])
        realtime.broadcast_robot(robot.name)
    from webapp.learning.services.rollouts import rollout_cycle_started

    rollout_cycle_started(robot_name=robot_name, policy_version=message.policy_version or "")
    return episode


def episode_ended(*, robot_name: str, message: CycleEnded) -> Episode:
    robot = Robot.objects.select_related("station").get(name=robot_name)
    declared = RobotFeatures.model_validate(robot.features) if robot.features else None
    if message.failure_mode and declared is not None and not declared.reports(message.failure_mode):
        raise Invalid(f"failure mode {message.failure_mode!r} is not one the robot declares "
                      f"({', '.join([mode.key for mode in declared.failure_modes] + list(GENERIC_FAILURE_MODES))})")
    now = timezone.now()
    episode, created = Episode.objects.get_or_create(
        id=uuid.UUID(message.episode),
        defaults={"robot": robot, "station": robot.station, "policy_version": robot.policy_version,
                  "started_at": now - timedelta(seconds=message.duration_s)},
    )
    if episode.robot_id != robot.pk:
        raise NotFound(f"episode {message.episode} belongs to another robot")
    episode.ended_at = now
    episode.duration_s = message.duration_s
    episode.outcome = message.outcome
    episode.failure_mode = message.failure_mode or ""
    episode.intervened = message.intervened or episode.intervened
    episode.actions_clamped = message.actions_clamped
    episode.save()
    return episode
