"""Channel-layer groups and events: the one place the server publishes to robots and dashboards.

Every event is a TypedDict below; its `payload` is a protocol message (foreman_protocol) turned into
a dict, because the channel layer carries dicts, not models. Sync publishers (for services) send
after the transaction commits; the async ones are for consumers, which are not in a transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from foreman_protocol.messages import (
    Command,
    InterventionUpdate,
    LeaseMessage,
    PolicyRollout,
    RobotFault,
    RobotUpdate,
    RobotWarning,
    ServerToBrowserMessage,
    SfuPublish,
    SignalToViewer,
    StationChanged,
    TeleopCommand,
    TeleopStateRelay,
    ViewerSignal,
    as_payload,
)

FLEET_GROUP = "fleet"


def robot_group(robot_name: str) -> str:
    return f"robot.{robot_name}"


# ---------------------------------------------------------------- events (handler = type with . → _)


class RobotSendEvent(TypedDict):
    """To a robot's connection: a server → robot message (command, teleop relay, rollout, station)."""

    type: Literal["robot.send"]
    payload: dict[str, Any]


class RobotLeaseEvent(TypedDict):
    """To a robot's connection: custody changed; `holder_channel` is the lease holder's dashboard."""

    type: Literal["robot.lease"]
    payload: dict[str, Any]
    holder_channel: str


class RobotSignalEvent(TypedDict):
    """To a robot's connection: a viewer's signaling message; `viewer` is the viewer's channel."""

    type: Literal["robot.signal"]
    viewer: str
    payload: dict[str, Any]


class RobotReplacedEvent(TypedDict):
    """To a robot's older connection: the same robot connected again."""

    type: Literal["robot.replaced"]


class RobotRevokedEvent(TypedDict):
    """To a robot's connections: its token was revoked or rotated, or the robot retired."""

    type: Literal["robot.revoked"]


class FleetSendEvent(TypedDict):
    """To every dashboard: a server → browser message."""

    type: Literal["fleet.send"]
    payload: dict[str, Any]


class FleetTelemetryEvent(TypedDict):
    """To every dashboard: the latest telemetry of the robots that reported since the last batch."""

    type: Literal["fleet.telemetry"]
    robots: dict[str, dict[str, Any]]


class FleetDirectEvent(TypedDict):
    """To one dashboard: a server → browser message for it alone (signal, teleop_state)."""

    type: Literal["fleet.direct"]
    payload: dict[str, Any]


# ---------------------------------------------------------------- event builders


def robot_send_event(message: Command | PolicyRollout | TeleopCommand | SfuPublish | StationChanged) -> RobotSendEvent:
    return {"type": "robot.send", "payload": as_payload(message)}


def robot_lease_event(message: LeaseMessage, holder_channel: str = "") -> RobotLeaseEvent:
    return {"type": "robot.lease", "payload": as_payload(message), "holder_channel": holder_channel}


def robot_signal_event(message: ViewerSignal, viewer: str) -> RobotSignalEvent:
    return {"type": "robot.signal", "viewer": viewer, "payload": as_payload(message)}


def robot_replaced_event() -> RobotReplacedEvent:
    return {"type": "robot.replaced"}


def robot_revoked_event() -> RobotRevokedEvent:
    return {"type": "robot.revoked"}


def fleet_send_event(message: ServerToBrowserMessage) -> FleetSendEvent:
    return {"type": "fleet.send", "payload": as_payload(message)}


def fleet_telemetry_event(robots: dict[str, dict[str, Any]]) -> FleetTelemetryEvent:
    # The hot path (every robot, 10 Hz): the bodies were validated as Telemetry on receipt and are
    # passed on as dicts; the tests parse every telemetry_batch a dashboard gets as TelemetryReport.
    return {"type": "fleet.telemetry", "robots": robots}


def fleet_direct_event(message: SignalToViewer | TeleopStateRelay) -> FleetDirectEvent:
    return {"type": "fleet.direct", "payload": as_payload(message)}


# ---------------------------------------------------------------- sync publishers (services)


Event = RobotSendEvent | RobotLeaseEvent | RobotSignalEvent | RobotReplacedEvent | RobotRevokedEvent | FleetSendEvent | FleetTelemetryEvent | FleetDirectEvent


def _send_group(group: str, event: Event) -> None:
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(group, event)


def after_commit(callback: Callable[[], None]) -> None:
    """Publish only what was really written: never tell a robot about a rolled-back change."""
    transaction.on_commit(callback, robust=True)


def to_robot(robot_name: str, message: Command | PolicyRollout | StationChanged) -> None:
    event = robot_send_event(message)
    after_commit(lambda: _send_group(robot_group(robot_name), event))


def lease_to_robot(robot_name: str, message: LeaseMessage, holder_channel: str = "") -> None:
    event = robot_lease_event(message, holder_channel)
    after_commit(lambda: _send_group(robot_group(robot_name), event))


def robot_revoked(robot_name: str) -> None:
    """After commit, close the robot's connections (4401): the token they were made with is gone."""
    event = robot_revoked_event()
    after_commit(lambda: _send_group(robot_group(robot_name), event))


def broadcast_robot(robot_name: str) -> None:
    """After commit, tell every dashboard the robot's current status."""

    def publish() -> None:
        from webapp.fleet.selectors import robot_status_by_name

        status = robot_status_by_name(robot_name, with_telemetry=False)
        if status is not None:
            _send_group(FLEET_GROUP, fleet_send_event(RobotUpdate.model_validate({"robot": status})))

    after_commit(publish)


def broadcast_intervention(intervention_id: Any) -> None:
    def publish() -> None:
        from webapp.fleet.models import Intervention
        from webapp.fleet.selectors import intervention_dict

        item = Intervention.objects.select_related("robot", "acknowledged_by", "claimed_by", "resolved_by").filter(pk=intervention_id).first()
        if item is not None:
            _send_group(FLEET_GROUP, fleet_send_event(InterventionUpdate.model_validate({"intervention": intervention_dict(item)})))

    after_commit(publish)


# ---------------------------------------------------------------- async publishers (consumers)


async def send_to_channel(channel: str, event: Event) -> None:
    layer = get_channel_layer()
    if layer is not None and channel:
        await layer.send(channel, event)


async def send_to_group(group: str, event: Event) -> None:
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_send(group, event)


async def relay_robot_event(message: RobotFault | RobotWarning) -> None:
    """A robot's fault or warning, to every dashboard at once (not behind telemetry)."""
    await send_to_group(FLEET_GROUP, fleet_send_event(message))

