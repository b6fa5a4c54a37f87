"""Control custody: who drives which robot, e-stop latching and supervisory commands.

Rules (docs/protocol.md):
- one active lease per robot, enforced by a row lock on the robot and a partial unique index;
- a lease expires unless renewed; expiry or the holder's socket closing → the robot holds;
- release hands the robot back to the policy;
- the e-stop latches at the server until an authorized person clears it, and ends every lease on
  the robot: after clear_estop the robot holds, and moving it needs a new claim (or a resume);
- every transition is an AuditEvent.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, Literal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from foreman_protocol.messages import Command, CommandName, LeaseEndReason, LeaseInfo, LeaseMessage
from webapp.fleet import realtime
from webapp.fleet.models import ControlSession, Intervention, Robot
from webapp.fleet.roles import Capability, user_can
from webapp.fleet.selectors import lease_dict
from webapp.fleet.services.audit import audit_record
from webapp.fleet.services.errors import Conflict, Estopped, Forbidden, NotFound, RobotOffline, StaleLease


def _lock_robot(name: str) -> Robot:
    robot = Robot.objects.select_for_update().filter(name=name).first()
    if robot is None:
        raise NotFound(f"no robot named {name!r}")
    return robot


def _require(user: Any, capability: Capability, what: str) -> None:
    if not user_can(user, capability):
        raise Forbidden(f"{user.username} may not {what}")


def _lease_message(lease: ControlSession) -> LeaseMessage:
    return LeaseMessage(lease=LeaseInfo.model_validate(lease_dict(lease)))


def _command(command: CommandName, by: str, reason: str | None = None, command_id: str | None = None) -> Command:
    return Command(id=command_id or str(uuid.uuid4()), command=command, by=by, reason=reason or None)


def _end_lease(lease: ControlSession, reason: LeaseEndReason, actor: str, source: str, resolved_by: Any = None) -> None:
    """End a lease (inside a transaction) and tell the robot; hold unless it was a hand-back."""
    now = timezone.now()
    lease.ended_at = now
    lease.end_reason = reason
    lease.save(update_fields=["ended_at", "end_reason"])
    robot = lease.robot
    audit_record(actor=actor, action="lease_ended", robot=robot, source=source, lease=str(lease.id), holder=lease.user.username,
                 reason=reason)
    intervention = lease.intervention
    if intervention is not None and intervention.state == Intervention.State.CLAIMED:
        if reason == "released":
            intervention.state = Intervention.State.RESOLVED
            intervention.resolved_at = now
            intervention.resolved_by = resolved_by or lease.user
            intervention.resolution = "handed_back"
        else:
            # Custody lost before the job was done: the robot holds and needs a person again.
            intervention.state = Intervention.State.ACKNOWLEDGED
        intervention.save()
        realtime.broadcast_intervention(intervention.id)
    realtime.lease_to_robot(robot.name, LeaseMessage(lease=None, ended=str(lease.id), reason=reason))
    realtime.broadcast_robot(robot.name)


def robot_claim_control(
    *,
    robot_name: str,
    user: Any,
    mode: str = "teleop",
    takeover: bool = False,
    holder_channel: str = "",
    source: str = "",
) -> ControlSession:
    """Give `user` an exclusive lease on the robot, or refuse and name who holds it."""
    _require(user, "control", "take control of robots")
    if takeover:
        _require(user, "takeover", "take over a robot another person holds")
    try:
        with transaction.atomic():
            robot = _lock_robot(robot_name)
            if robot.estopped:
                raise Estopped(f"{robot.name} is e-stopped: clear the e-stop before taking control")
            if not robot.online:
                raise RobotOffline(f"{robot.name} is offline")
            now = timezone.now()
            current = ControlSession.objects.select_related("user", "robot", "intervention").filter(robot=robot, ended_at__isnull=True).first()
            if current is not None and current.expires_at <= now:
                _end_lease(current, "expired", "system", source)
                current = None
            if current is not None:
                same_holder = current.user_id == user.pk
                if not (takeover or same_holder):
                    raise Conflict(f"{robot.name} is held by {current.user.username}", holder=current.user.username)
                _end_lease(current, "taken_over", user.username, source)
                if takeover and not same_holder:
                    audit_record(actor=user.username, action="takeover", robot=robot, source=source, from_holder=current.user.username)
            intervention = (
                Intervention.objects.filter(robot=robot)
                .exclude(state=Intervention.State.RESOLVED)
                .order_by("raised_at")
                .first()
            )
            if intervention is None:
                # A person taking a robot over unprompted is an intervention too (KPIs count it).
                intervention = Intervention.objects.create(
                    robot=robot,
                    trigger=Intervention.Trigger.SUPERVISOR,
                    severity=Intervention.Severity.LOW,
                    detail=f"taken over by {user.username}",
                    raised_at=now,
                    acknowledged_at=now,
                    acknowledged_by=user,
                )
            intervention.state = Intervention.State.CLAIMED
            intervention.claimed_at = intervention.claimed_at or now
            intervention.claimed_by = user
            if intervention.acknowledged_at is None:
                intervention.acknowledged_at = now
                intervention.acknowledged_by = user
            intervention.save()
            lease = ControlSession.objects.create(
                id=uuid.uuid4(),
                robot=robot,
                user=user,
                mode=mode,
                holder_channel=holder_channel,
                started_at=now,
                expires_at=now + timedelta(seconds=settings.FOREMAN_LEASE_TTL_S),
                intervention=intervention,
            )
            audit_record(actor=user.username, action="lease_granted", robot=robot, source=source, lease=str(lease.id), mode=mode)
            realtime.lease_to_robot(robot.name, _lease_message(lease), holder_channel)
            realtime.broadcast_robot(robot.name)
            realtime.broadcast_intervention(intervention.id)
            return lease
    except IntegrityError:
        # Another claim committed between our check and insert: exactly one wins.
        holder = ControlSession.objects.select_related("user").filter(robot__name=robot_name, ended_at__isnull=True).first()
        name = holder.user.username if holder else "someone else"
        raise Conflict(f"{robot_name} is held by {name}", holder=name) from None


def _current_lease_for(robot: Robot, lease_id: str) -> ControlSession:
    lease = ControlSession.objects.select_related("user", "robot", "intervention").filter(robot=robot, ended_at__isnull=True).first()
    if lease is None or str(lease.id) != str(lease_id):
        raise StaleLease(f"lease {lease_id} is not the current lease of {robot.name}")
    return lease


def lease_heartbeat(*, robot_name: str, lease_id: str, user: Any, source: str = "") -> ControlSession:
    """Renew a lease. Only its holder can; an expired lease cannot be revived."""
    _require(user, "control", "renew a lease")
    with transaction.atomic():
        robot = _lock_robot(robot_name)
        lease = _current_lease_for(robot, lease_id)
        if lease.user_id != user.pk:
            raise Forbidden(f"lease {lease_id} belongs to {lease.user.username}")
        now = timezone.now()
        expired = lease.expires_at <= now
        if expired:
            # Ended and committed before the error is raised: raising inside the block would roll it back.
            _end_lease(lease, "expired", "system", source)
        else:
            lease.expires_at = now + timedelta(seconds=settings.FOREMAN_LEASE_TTL_S)
            lease.save(update_fields=["expires_at"])
            realtime.lease_to_robot(robot.name, _lease_message(lease), lease.holder_channel)
    if expired:
        raise StaleLease(f"lease {lease_id} has expired")
    return lease


def lease_release(*, robot_name: str, lease_id: str, user: Any, source: str = "") -> None:
    """Hand the robot back to its policy."""
    _require(user, "control", "release a lease")
    with transaction.atomic():
        robot = _lock_robot(robot_name)
        lease = _current_lease_for(robot, lease_id)
        if lease.user_id != user.pk and not user_can(user, "takeover"):
            raise Forbidden(f"lease {lease_id} belongs to {lease.user.username}")
        _end_lease(lease, "released", user.username, source, resolved_by=user)


def lease_expire_if_stale(lease_id: str) -> bool:
    """End the lease if its time is up (called by the robot's socket timer and a Celery sweep)."""
    with transaction.atomic():
        lease = ControlSession.objects.select_related("robot", "user", "intervention").filter(pk=lease_id, ended_at__isnull=True).first()
        if lease is None:
            return False
        Robot.objects.select_for_update().filter(pk=lease.robot_id).first()
        lease.refresh_from_db(fields=["expires_at", "ended_at"])
        if lease.ended_at is not None or lease.expires_at > timezone.now():
            return False
        _end_lease(lease, "expired", "system", "lease timer")
        return True


def leases_expire_stale() -> int:
    ids = list(ControlSession.objects.filter(ended_at__isnull=True, expires_at__lte=timezone.now()).values_list("id", flat=True))
    return sum(1 for lease_id in ids if lease_expire_if_stale(str(lease_id)))


def leases_end_for_channel(channel: str, source: str = "") -> int:
    """The operator's dashboard socket closed: end every lease it held; those robots hold."""
    if not channel:
        return 0
    ended = 0
    for lease_id in ControlSession.objects.filter(holder_channel=channel, ended_at__isnull=True).values_list("id", flat=True):
        with transaction.atomic():
            lease = ControlSession.objects.select_related("robot", "user", "intervention").filter(pk=lease_id, ended_at__isnull=True).first()
            if lease is None:
                continue
            Robot.objects.select_for_update().filter(pk=lease.robot_id).first()
            _end_lease(lease, "operator_disconnected", lease.user.username, source)
            ended += 1
    return ended


def robot_estop(*, robot_name: str, actor: Any | None, reason: str = "", source: str = "") -> Robot:
    """Latch the e-stop. `actor` is a user, or None when the robot itself reports it."""
    if actor is not None:
        _require(actor, "estop", "e-stop robots")
    with transaction.atomic():
        robot = _lock_robot(robot_name)
        actor_name = actor.username if actor is not None else f"robot:{robot.name}"
        now = timezone.now()
        if not robot.estopped:
            robot.estopped = True
            robot.estopped_at = now
            robot.estopped_by = actor_name
            robot.estop_reason = reason[:500]
            robot.save(update_fields=["estopped", "estopped_at", "estopped_by", "estop_reason"])
            intervention = Intervention.objects.create(
                robot=robot,
                trigger=Intervention.Trigger.ESTOP,
                severity=Intervention.Severity.HIGH,
                detail=f"e-stop by {actor_name}" + (f": {reason}" if reason else ""),
                raised_at=now,
            )
            realtime.broadcast_intervention(intervention.id)
        audit_record(actor=actor_name, action="estop", robot=robot, source=source, reason=reason)
        # An e-stop ends custody: after it is cleared the robot holds, and an operator's command
        # stream that kept running must never drive it again.
        for lease in ControlSession.objects.select_related("user", "robot", "intervention").filter(robot=robot, ended_at__isnull=True):
            _end_lease(lease, "estop", actor_name, source)
        # Sent even if already latched: the robot must be stopped whatever it believes.
        realtime.to_robot(robot.name, _command("estop", actor_name, reason))
        realtime.broadcast_robot(robot.name)
        return robot


def robot_clear_estop(*, robot_name: str, user: Any, source: str = "") -> Robot:
    _require(user, "clear_estop", "clear an e-stop")
    with transaction.atomic():
        robot = _lock_robot(robot_name)
        if not robot.estopped:
            raise Conflict(f"{robot.name} is not e-stopped")
        robot.estopped = False
        robot.estopped_by = ""
        robot.estop_reason = ""
        robot.estopped_at = None
        robot.save(update_fields=["estopped", "estopped_at", "estopped_by", "estop_reason"])
        now = timezone.now()
        for item in Intervention.objects.filter(robot=robot, trigger=Intervention.Trigger.ESTOP).exclude(state=Intervention.State.RESOLVED):
            item.state = Intervention.State.RESOLVED
            item.resolved_at = now
            item.resolved_by = user
            item.resolution = "estop_cleared"
            if item.acknowledged_at is None:
                item.acknowledged_at, item.acknowledged_by = now, user
            item.save()
            realtime.broadcast_intervention(item.id)
        audit_record(actor=user.username, action="clear_estop", robot=robot, source=source)
        realtime.to_robot(robot.name, _command("clear_estop", user.username))
        realtime.broadcast_robot(robot.name)
        return robot


def robot_command(*, robot_name: str, user: Any, command: Literal["pause", "resume"], source: str = "") -> str:
    """Pause or resume a robot. Resume is refused while e-stopped or held by a person."""
    if command not in {"pause", "resume"}:
        raise Conflict(f"unknown command {command!r}")
    _require(user, "estop", f"{command} robots")
    with transaction.atomic():
        robot = _lock_robot(robot_name)
        if not robot.online:
            raise RobotOffline(f"{robot.name} is offline")
        if command == "resume":
            if robot.estopped:
                raise Estopped(f"{robot.name} is e-stopped: clear the e-stop first")
            holder = ControlSession.objects.select_related("user").filter(robot=robot, ended_at__isnull=True).first()
            if holder is not None:
                raise Conflict(f"{robot.name} is held by {holder.user.username}", holder=holder.user.username)
            now = timezone.now()
            # Resuming without taking over settles the open interventions (e.g. a false alarm).
            for item in Intervention.objects.filter(robot=robot).exclude(state=Intervention.State.RESOLVED):
                item.state = Intervention.State.RESOLVED
                item.resolved_at, item.resolved_by, item.resolution = now, user, "resumed"
                if item.acknowledged_at is None:
                    item.acknowledged_at, item.acknowledged_by = now, user
                item.save()
                realtime.broadcast_intervention(item.id)
        command_id = str(uuid.uuid4())
        audit_record(actor=user.username, action=command, robot=robot, source=source, command=command_id)
        realtime.to_robot(robot.name, _command(command, user.username, command_id=command_id))
        return command_id


def lease_holder_check(*, robot_name: str, lease_id: str, user: Any) -> None:
    """Raise unless `user` holds `lease_id`, the current lease of the robot (WebSocket teleop relay)."""
    lease = ControlSession.objects.filter(robot__name=robot_name, ended_at__isnull=True).first()
    if lease is None or str(lease.id) != str(lease_id) or lease.expires_at <= timezone.now():
        raise StaleLease(f"lease {lease_id} is not the current lease of {robot_name}")
    if lease.user_id != user.pk:
        raise Forbidden("only the lease holder can drive this robot")
