"""The agent against the REAL server (daphne subprocess on 127.0.0.1), observed from dashboard sockets."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from channels.db import database_sync_to_async

from tests.agent.station import ConfidencePolicy, KinematicStation, make_agent, stop_agent
from tests.conftest import fleet_socket, wait_for_servers_to_settle
from tests.servers import eventually

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def server_settles_before_flush(transactional_db: Any) -> Iterator[None]:
    """The daphne server is still writing what a test's closed sockets caused (robot offline, audit
    rows); under load the flush's TRUNCATE raced those writes and deadlocked."""
    yield
    wait_for_servers_to_settle()


async def test_hello_telemetry_intervention_claim_teleop_release_estop(fleet, users, daphne, tmp_path, cleanup):
    station = KinematicStation(cycle_steps=100_000)
    # Confidence drops on the third chunk → a policy_uncertainty intervention.
    agent = make_agent(daphne.url, fleet.tokens["r1"], tmp_path / "r1", station, ConfidencePolicy(confidences=(0.95, 0.95, 0.2, 0.95)))
    task = asyncio.create_task(agent.run())
    try:
        supervisor, _ = await fleet_socket(users["supervisor"])
        cleanup.append(supervisor)
        await eventually(lambda: agent.link.is_connected, what="welcome")

        batch = await supervisor.recv_until(lambda m: m["type"] == "telemetry_batch" and "r1" in m["robots"])
        assert batch["robots"]["r1"]["mode"] in ("autonomous", "hold")
        raised = await supervisor.recv_until(lambda m: m["type"] == "intervention" and m["intervention"]["robot"] == "r1", timeout=10)
        assert raised["intervention"]["trigger"] == "policy_uncertainty" and raised["intervention"]["state"] == "raised"
        assert raised["intervention"]["id"] in agent.loop.open_interventions
        assert agent.modes.mode == "hold"

        operator, _ = await fleet_socket(users["operator"])
        cleanup.append(operator)
        await operator.send({"type": "claim", "id": "c1", "robot": "r1", "mode": "teleop"})
        result = await operator.recv_until(lambda m: m.get("ref") == "c1")
        lease_id = result["data"]["lease"]["id"]
        await eventually(
            lambda: agent.modes.lease is not None and agent.modes.lease.id == lease_id and agent.modes.mode == "teleop",
            what="teleop under the lease",
        )
        assert agent.loop.open_interventions == {}  # a person took it: no more re-sends

        # WebSocket teleop fallback, relayed by the server, moves the robot.
        x_before = station.position[0]
        for seq in range(1, 15):
            await operator.send({"type": "teleop", "robot": "r1", "lease_id": lease_id, "seq": seq, "vx": 0.2})
            await asyncio.sleep(0.03)
        await eventually(lambda: station.position[0] > x_before + 0.02, what="teleop motion")
        state = await operator.recv_until(lambda m: m["type"] == "teleop_state")
        assert state["lease_id"] == lease_id

        await operator.send({"type": "release", "id": "rel", "robot": "r1", "lease_id": lease_id})
        await eventually(lambda: agent.modes.mode == "autonomous" and agent.modes.lease is None, what="hand-back")

        await supervisor.send({"type": "estop", "id": "e1", "robot": "r1", "reason": "test"})
        await eventually(lambda: agent.modes.mode == "estopped" and agent.latch.estopped, what="e-stop")

        # Latched across a reconnect: drop the link from the agent side; hello says estopped.
        connects = agent.link.connects
        await agent.link.ws.close()
        await eventually(lambda: agent.link.connects > connects and agent.link.is_connected, what="reconnect")
        assert agent.modes.mode == "estopped"
    finally:
        await stop_agent(agent, task)

    # Latched across an agent restart (state dir), even if the server forgot.
    from webapp.fleet.models import Robot

    await database_sync_to_async(lambda: Robot.objects.filter(name="r1").update(estopped=False))()
    agent2 = make_agent(daphne.url, fleet.tokens["r1"], tmp_path / "r1", station, ConfidencePolicy())
    task2 = asyncio.create_task(agent2.run())
    try:
        await eventually(lambda: agent2.link.is_connected, what="second agent welcome")
        assert agent2.modes.mode == "estopped"
        estopped = await database_sync_to_async(lambda: Robot.objects.get(name="r1").estopped)()
        assert estopped  # the robot's own latch re-latched the server
        await supervisor.send({"type": "clear_estop", "id": "ce", "robot": "r1"})
        await eventually(lambda: agent2.modes.mode == "hold" and not agent2.latch.estopped, what="clear → hold")
        await supervisor.send({"type": "resume", "id": "res", "robot": "r1"})
        await eventually(lambda: agent2.modes.mode == "autonomous", what="resume")
    finally:
        await stop_agent(agent2, task2)


async def test_malformed_server_messages_are_dropped_and_counted(fleet, daphne, tmp_path):
    """Push garbage to the agent through the server's channel layer; the agent counts and keeps going."""
    from channels.layers import get_channel_layer

    station = KinematicStation(cycle_steps=100_000)
    agent = make_agent(daphne.url, fleet.tokens["r2"], tmp_path / "r2", station, ConfidencePolicy())
    task = asyncio.create_task(agent.run())
    try:
        await eventually(lambda: agent.link.is_connected, what="welcome")
        layer = get_channel_layer()
        bad = [
            {"type": "command", "id": "x", "command": "self_destruct", "by": "mallory"},
            {"type": "teleop", "lease_id": "not-a-uuid", "seq": 1},
            {"type": "nonsense"},
            {"type": "lease", "lease": {"id": str(uuid.uuid4())}},
        ]
        for payload in bad:
            await layer.group_send("robot.r2", {"type": "robot.send", "payload": payload})
        await eventually(lambda: sum(agent.link.malformed.values()) >= 4, what="malformed counted")
        assert agent.link.malformed["bad_message"] >= 3 and agent.link.malformed["unknown_type"] == 1
        ticks = agent.loop.stats.ticks
        await eventually(lambda: agent.loop.stats.ticks > ticks + 5, what="loop still running")
        assert agent.link.is_connected and agent.modes.mode == "autonomous"
        # A valid command still works afterwards, and is acknowledged.
        await layer.group_send("robot.r2", {"type": "robot.send", "payload": {"type": "command", "id": "p1", "command": "pause", "by": "test"}})
        await eventually(lambda: agent.modes.mode == "paused", what="pause")
    finally:
        await stop_agent(agent, task)


async def test_bad_token_is_fatal(fleet, daphne, tmp_path):
    from robot_agent.link import FatalLinkError

    agent = make_agent(daphne.url, "frt_" + "x" * 40, tmp_path / "bad", KinematicStation(), ConfidencePolicy())
    with pytest.raises(FatalLinkError, match="4401"):
        await asyncio.wait_for(agent.run(), timeout=15)


__all__ = ["json"]


async def test_intervention_raised_while_offline_is_delivered_after_reconnect(fleet, users, daphne, tmp_path, cleanup):
    from robot_agent.link import Link  # noqa: F401 - documents which component re-sends

    station = KinematicStation(cycle_steps=100_000)
    agent = make_agent(daphne.url, fleet.tokens["r3"], tmp_path / "r3", station, ConfidencePolicy())
    task = asyncio.create_task(agent.run())
    try:
        supervisor, _ = await fleet_socket(users["supervisor"])
        cleanup.append(supervisor)
        await eventually(lambda: agent.link.is_connected, what="welcome")
        # Break the link and raise while it is down: the message must survive the outage.
        agent.link.url = agent.link.url.replace(str(daphne.port), "9")  # nothing listens on port 9
        await agent.link.ws.close()
        await eventually(lambda: not agent.link.is_connected, what="link down")
        intervention = agent.loop.raise_intervention("fault", "high", "nut missing at station")
        await asyncio.sleep(0.3)
        agent.link.url = agent.link.url.replace(":9/", f":{daphne.port}/")
        message = await supervisor.recv_until(lambda m: m["type"] == "intervention" and m["intervention"]["id"] == intervention, timeout=10)
        assert message["intervention"]["trigger"] == "fault" and message["intervention"]["detail"] == "nut missing at station"
        # Another reconnect re-sends it (still open): the server is idempotent, nothing duplicates.
        await agent.link.ws.close()
        await eventually(lambda: agent.link.connects >= 3 and agent.link.is_connected, what="second reconnect")
        await asyncio.sleep(0.3)
        from webapp.fleet.models import Intervention

        count = await database_sync_to_async(Intervention.objects.filter(id=intervention).count)()
        assert count == 1
    finally:
        await stop_agent(agent, task)


async def test_a_takt_edited_at_the_server_reaches_the_running_agent(fleet, users, daphne, tmp_path, cleanup):
    from webapp.fleet.services.administration import station_update

    agent = make_agent(daphne.url, fleet.tokens["r1"], tmp_path / "r1", KinematicStation(cycle_steps=100_000), ConfidencePolicy())
    task = asyncio.create_task(agent.run())
    try:
        supervisor, _ = await fleet_socket(users["supervisor"])
        cleanup.append(supervisor)
        await eventually(lambda: agent.link.is_connected, what="welcome")
        assert agent.loop.settings.takt_s == 76.0  # the demo nut station's, from the welcome
        await database_sync_to_async(station_update)(name="nut-1", takt_s=40.0, actor="admin")
        await eventually(lambda: agent.loop.settings.takt_s == 40.0, what="the new takt at the agent")
        batch = await supervisor.recv_until(lambda m: m["type"] == "telemetry_batch" and m["robots"].get("r1", {}).get("takt_s") == 40.0)
        assert batch["robots"]["r1"]["takt_s"] == 40.0  # what the tile shows against
    finally:
        await stop_agent(agent, task)
