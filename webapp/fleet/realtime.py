"""Channel-layer groups and events, and sync helpers that publish after the transaction commits."""

from __future__ import annotations

from typing import Any, Callable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

FLEET_GROUP = "fleet"


def robot_group(robot_name: str) -> str:
    return f"robot.{robot_name}"


def _send_group(group: str, event: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(group, event)


def _send_channel(channel: str, event: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is not None and channel:
        async_to_sync(layer.send)(channel, event)


def after_commit(callback: Callable[[], None]) -> None:
    """Publish only what was really written: never tell a robot about a rolled-back change."""
    transaction.on_commit(callback, robust=True)


def to_robot(robot_name: str, payload: dict[str, Any]) -> None:
    after_commit(lambda: _send_group(robot_group(robot_name), {"type": "robot.send", "payload": payload}))


def lease_to_robot(robot_name: str, payload: dict[str, Any], holder_channel: str = "") -> None:
    event = {"type": "robot.lease", "payload": payload, "holder_channel": holder_channel}
    after_commit(lambda: _send_group(robot_group(robot_name), event))


def to_fleet(payload: dict[str, Any]) -> None:
    after_commit(lambda: _send_group(FLEET_GROUP, {"type": "fleet.send", "payload": payload}))


def to_fleet_now(payload: dict[str, Any]) -> None:
    _send_group(FLEET_GROUP, {"type": "fleet.send", "payload": payload})


def to_channel(channel: str, event: dict[str, Any]) -> None:
    after_commit(lambda: _send_channel(channel, event))


def broadcast_robot(robot_name: str) -> None:
    """After commit, tell every dashboard the robot's current status."""

    def publish() -> None:
        from webapp.fleet.selectors import robot_status_by_name

        status = robot_status_by_name(robot_name, with_telemetry=False)
        if status is not None:
            _send_group(FLEET_GROUP, {"type": "fleet.send", "payload": {"type": "robot", "robot": status}})

    after_commit(publish)


def broadcast_intervention(intervention_id: Any) -> None:
    def publish() -> None:
        from webapp.fleet.models import Intervention
        from webapp.fleet.selectors import intervention_dict

        item = Intervention.objects.select_related("robot", "acknowledged_by", "claimed_by", "resolved_by").filter(pk=intervention_id).first()
        if item is not None:
            _send_group(FLEET_GROUP, {"type": "fleet.send", "payload": {"type": "intervention", "intervention": intervention_dict(item)}})

    after_commit(publish)
