"""The robot and dashboard WebSocket endpoints against docs/protocol.md: authentication, bad input,
custody over sockets, e-stop, signaling relay and teleop fallback. Runs on Postgres + Redis."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from tests.conftest import ORIGIN, application, fleet_socket, hello, robot_socket, telemetry
from webapp.fleet.models import AuditEvent, ControlSession, Intervention, Robot
from webapp.fleet.services.users import api_token_issue

pytestmark = pytest.mark.django_db(transaction=True)


async def close_code(communicator: WebsocketCommunicator) -> int | None:
    """The code the server closed with (after accepting, so clients can read it)."""
    connected, code = await communicator.connect(timeout=5)
    if not connected:
        return code
    output = await communicator.receive_output(timeout=5)
    assert output["type"] == "websocket.close", output
    await communicator.disconnect()
    return output.get("code")


@database_sync_to_async
def db(fn: Any) -> Any:
    return fn()


# ------------------------------------------------------------------ authentication


@pytest.mark.parametrize("header", [None, b"Bearer frt_not-a-real-token", b"Bearer fut_user-token-on-robot-endpoint", b"Basic abc"])
async def test_robot_endpoint_refuses_bad_tokens_with_4401(fleet, header):
    headers = [(b"authorization", header)] if header else []
    assert await close_code(WebsocketCommunicator(application(), "/ws/robot/", headers=headers)) == 4401


async def test_user_token_never_reaches_robot_endpoint(fleet, users):
    token = await database_sync_to_async(api_token_issue)(user=users["admin"])
    communicator = WebsocketCommunicator(application(), "/ws/robot/", headers=[(b"authorization", f"Bearer {token}".encode())])
    assert await close_code(communicator) == 4401


async def test_fleet_endpoint_auth_and_origin(fleet, users):
    assert await close_code(WebsocketCommunicator(application(), "/ws/fleet/", headers=[ORIGIN])) == 4401
    robot_token = fleet.tokens["r1"]
    communicator = WebsocketCommunicator(application(), "/ws/fleet/", headers=[ORIGIN, (b"authorization", f"Bearer {robot_token}".encode())])
    assert await close_code(communicator) == 4401

    async def with_user(user: Any, origin: tuple[bytes, bytes] | None) -> int | None:
        token = await database_sync_to_async(api_token_issue)(user=user)
        headers = [(b"authorization", f"Bearer {token}".encode())] + ([origin] if origin else [])
        return await close_code(WebsocketCommunicator(application(), "/ws/fleet/", headers=headers))

    assert await with_user(users["labeler"], ORIGIN) == 4403  # no fleet role
    assert await with_user(users["operator"], (b"origin", b"http://evil.example.com")) == 4403
    assert await with_user(users["operator"], None) == 4403


# ------------------------------------------------------------------ bad input


BAD_FRAMES: list[tuple[Any, str]] = [
    ("{not json", "bad_json"),
    ("[1, 2, 3]", "bad_json"),
    (json.dumps({"type": "launch_missiles"}), "unknown_type"),
    (json.dumps({"no": "type"}), "unknown_type"),
    (json.dumps(telemetry(progress=2.0)), "bad_message"),
    (json.dumps(telemetry(extra_field=1)), "bad_message"),
    (json.dumps(telemetry(mode="flying")), "bad_message"),
    (json.dumps(telemetry(pad="x" * 70_000)), "too_large"),
    (b"\x00\x01binary", "binary_not_supported"),
]


async def test_robot_socket_survives_every_kind_of_bad_frame(fleet, users, cleanup):
    robot, _ = await robot_socket(fleet.tokens["r1"])
    dash, _ = await fleet_socket(users["supervisor"])
    cleanup.extend([robot, dash])
    for frame, code in BAD_FRAMES:
        if isinstance(frame, bytes):
            await robot.c.send_to(bytes_data=frame)
        else:
            await robot.c.send_to(text_data=frame)
        error = await robot.recv()
        assert error["type"] == "error" and error["code"] == code, (frame[:40], error)
        assert error["message"]
    # Still usable, and nothing from the rejected frames reached the dashboard.
    await robot.send(telemetry(progress=0.25))
    batch = await dash.recv_until(lambda m: m["type"] == "telemetry_batch")
    assert batch["robots"]["r1"]["progress"] == 0.25


async def test_fleet_socket_survives_bad_frames_and_rejected_requests_change_nothing(fleet, users, cleanup):
    dash, _ = await fleet_socket(users["operator"])
    cleanup.append(dash)
    for frame, code in BAD_FRAMES:
        if isinstance(frame, bytes):
            await dash.c.send_to(bytes_data=frame)
        else:
            await dash.c.send_to(text_data=frame)
        error = await dash.recv_until(lambda m: m["type"] == "error")
        assert error["code"] in {code, "unknown_type", "bad_message"}, (frame[:40], error)
    await dash.send({"type": "claim", "id": "c1", "robot": "no-such-robot", "mode": "teleop"})
    error = await dash.recv_until(lambda m: m["type"] == "error")
    assert error["code"] == "not_found" and error["ref"] == "c1"
    await dash.send({"type": "ack", "id": "a1", "intervention": str(uuid.uuid4())})
    assert (await dash.recv_until(lambda m: m["type"] == "error"))["code"] == "not_found"
    assert await db(lambda: ControlSession.objects.count()) == 0
    await dash.send({"type": "ping", "id": "p1", "sent_ms": 1.0})
    pong = await dash.recv_until(lambda m: m["type"] == "pong")
    assert pong["sent_ms"] == 1.0 and pong["server_ms"] > 0


async def test_robot_must_say_hello_first_and_speak_protocol_1(fleet):
    robot, _ = await robot_socket(fleet.tokens["r1"], greet=False)
    await robot.send(telemetry())
    error = await robot.recv()
    assert error["code"] == "bad_message" and "hello" in error["message"]
    await robot.send(hello(protocol=2))
    assert (await robot.recv())["code"] == "unsupported_protocol"
    output = await robot.c.receive_output(timeout=3)
    assert output == {"type": "websocket.close", "code": 4400}
    await robot.close()
    assert not await db(lambda: Robot.objects.get(name="r1").online)


FEATURES = {"control_hz": 30.0, "state": [{"name": "left.x", "unit": "m"}],
            "action": [{"name": "left.vx", "unit": "m/s", "low": -0.25, "high": 0.25}, {"name": "grip", "low": None, "high": 1.0}]}
STORED = {"control_hz": 30.0, "state": [{"name": "left.x", "unit": "m", "low": None, "high": None}],  # every field, defaults filled
          "action": [{"name": "left.vx", "unit": "m/s", "low": -0.25, "high": 0.25}, {"name": "grip", "unit": "", "low": None, "high": 1.0}],
          "teleop": None, "phases": [], "failure_modes": []}
TELEOP = {"space": "end_effector", "arms": ["left"], "spin": "turn the wrist"}


@pytest.mark.parametrize("features", [
    {**FEATURES, "action": []},
    {**FEATURES, "action": [{"name": "vx", "low": 1.0, "high": -1.0}]},
    {**FEATURES, "action": [{"name": "vx"}, {"name": "vx"}]},
    {**FEATURES, "state": [{"name": f"s{i}"} for i in range(257)]},
    {**FEATURES, "control_hz": 0},
    {**FEATURES, "action": [{"name": "vx", "unit": "u" * 33}]},
    {**FEATURES, "action": [{"name": "v x"}]},
    {**FEATURES, "color": "red"},
    {**FEATURES, "teleop": {**TELEOP, "space": "cartesian"}},
    {**FEATURES, "teleop": {**TELEOP, "arms": []}},
    {**FEATURES, "teleop": {**TELEOP, "arms": ["left", "left"]}},
    {**FEATURES, "teleop": {**TELEOP, "arms": ["middle"]}},
    {**FEATURES, "teleop": {**TELEOP, "spin": "s" * 65}},
    {**FEATURES, "phases": ["reach", "grasp", "reach"]},
    {**FEATURES, "phases": ["p"] * 33},
    {**FEATURES, "failure_modes": [{"key": "Dropped Part", "label": "Dropped part"}]},
    {**FEATURES, "failure_modes": [{"key": "dropped_part", "label": ""}]},
    {**FEATURES, "failure_modes": [{"key": "dropped_part", "label": "x" * 101}]},
    {**FEATURES, "failure_modes": [{"key": "dropped_part", "label": "a"}, {"key": "dropped_part", "label": "b"}]},
    {**FEATURES, "failure_modes": [{"key": "other", "label": "Other"}]},  # generic: every robot has it
])
async def test_a_hello_with_malformed_features_is_refused_and_changes_nothing(fleet, features):
    robot, _ = await robot_socket(fleet.tokens["r1"], greet=False)
    try:
        await robot.send(hello(features=features))
        error = await robot.recv()
        assert error["type"] == "error" and error["code"] == "bad_message", error
        stored = await db(lambda: Robot.objects.get(name="r1"))
        assert not stored.online and stored.features == {}
        await robot.send(hello(features=FEATURES))  # the connection stays usable
        assert (await robot.recv_until(lambda m: m["type"] == "welcome"))["robot"] == "r1"
        assert (await db(lambda: Robot.objects.get(name="r1").features)) == STORED
    finally:
        await robot.close()


async def test_the_latest_hello_declares_the_features(fleet):
    robot, _ = await robot_socket(fleet.tokens["r1"], features=FEATURES)
    await robot.close()
    assert (await db(lambda: Robot.objects.get(name="r1").features)) == STORED
    robot, _ = await robot_socket(fleet.tokens["r1"], features={**FEATURES, "teleop": TELEOP})  # and how a person drives it
    await robot.close()
    assert (await db(lambda: Robot.objects.get(name="r1").features))["teleop"] == {**TELEOP, "grip": True, "axes": ""}
    robot, _ = await robot_socket(fleet.tokens["r1"])  # an agent that declares nothing
    await robot.close()
    assert (await db(lambda: Robot.objects.get(name="r1").features)) == {}


# ------------------------------------------------------------------ presence


async def test_second_connection_replaces_the_first_and_robot_goes_offline_on_disconnect(fleet, users, cleanup):
    dash, snapshot = await fleet_socket(users["supervisor"])
    cleanup.append(dash)
    assert not next(r for r in snapshot["robots"] if r["name"] == "r2")["online"]
    first, _ = await robot_socket(fleet.tokens["r2"])
    online = await dash.recv_until(lambda m: m["type"] == "robot" and m["robot"]["name"] == "r2")
    assert online["robot"]["online"] is True
    second, _ = await robot_socket(fleet.tokens["r2"])
    assert await first.c.receive_output(timeout=3) == {"type": "websocket.close", "code": 4409}
    await first.close()
    assert await db(lambda: Robot.objects.get(name="r2").online)  # the replaced socket does not take it offline
    await second.close()
    offline = await dash.recv_until(lambda m: m["type"] == "robot" and m["robot"]["name"] == "r2" and not m["robot"]["online"])
    assert offline["robot"]["online"] is False


# ------------------------------------------------------------------ custody


async def claim(dash: Any, robot: str = "r1", request_id: str = "claim", **extra: Any) -> dict[str, Any]:
    await dash.send({"type": "claim", "id": request_id, "robot": robot, "mode": "teleop", **extra})
    return await dash.recv_until(lambda m: m.get("ref") == request_id)


async def test_claim_is_exclusive_and_refusal_names_the_holder(fleet, users, cleanup):
    robot, _ = await robot_socket(fleet.tokens["r1"])
    operator, _ = await fleet_socket(users["operator"])
    admin, _ = await fleet_socket(users["admin"])
    supervisor, _ = await fleet_socket(users["supervisor"])
    cleanup.extend([robot, operator, admin, supervisor])

    granted = await claim(operator)
    assert granted["type"] == "result" and granted["data"]["lease"]["holder"] == "operator"
    lease = await robot.recv_until(lambda m: m["type"] == "lease")
    assert lease["lease"]["id"] == granted["data"]["lease"]["id"]

    refused = await claim(admin)
    assert refused["type"] == "error" and refused["code"] == "conflict" and refused["holder"] == "operator"
    assert "operator" in refused["message"]

    forbidden = await claim(supervisor)
    assert forbidden["code"] == "forbidden"
    assert await db(lambda: ControlSession.objects.filter(ended_at__isnull=True).count()) == 1


async def test_operator_socket_closing_ends_the_lease_and_robot_holds(fleet, users, cleanup):
    robot, _ = await robot_socket(fleet.tokens["r1"])
    watcher, _ = await fleet_socket(users["supervisor"])
    cleanup.extend([robot, watcher])
    operator, _ = await fleet_socket(users["operator"])
    lease_id = (await claim(operator))["data"]["lease"]["id"]
    await robot.recv_until(lambda m: m["type"] == "lease" and m["lease"])
    await operator.close()
    ended = await robot.recv_until(lambda m: m["type"] == "lease")
    assert ended == {"type": "lease", "lease": None, "ended": lease_id, "reason": "operator_disconnected"}
    status = await watcher.recv_until(lambda m: m["type"] == "robot" and m["robot"]["name"] == "r1" and m["robot"]["lease"] is None)
    assert status["robot"]["lease"] is None
    session = await db(lambda: ControlSession.objects.get(pk=lease_id))
    assert session.end_reason == "operator_disconnected"


async def test_lease_without_heartbeat_expires_on_the_robot_socket_timer(fleet, users, cleanup, settings):
    settings.FOREMAN_LEASE_TTL_S = 0.6
    robot, _ = await robot_socket(fleet.tokens["r1"])
    operator, _ = await fleet_socket(users["operator"])
    cleanup.extend([robot, operator])
    lease_id = (await claim(operator))["data"]["lease"]["id"]
    await robot.recv_until(lambda m: m["type"] == "lease" and m["lease"])
    ended = await robot.recv_until(lambda m: m["type"] == "lease" and m["lease"] is None, timeout=5)
    assert ended["reason"] == "expired" and ended["ended"] == lease_id
    # A heartbeat after expiry cannot revive it.
    await operator.send({"type": "heartbeat", "id": "hb", "robot": "r1", "lease_id": lease_id})
    assert (await operator.recv_until(lambda m: m.get("ref") == "hb"))["code"] == "stale_lease"


async def test_heartbeat_renews_and_release_hands_back(fleet, users, cleanup):
    robot, _ = await robot_socket(fleet.tokens["r1"])
    operator, _ = await fleet_socket(users["operator"])
    cleanup.extend([robot, operator])
    granted = (await claim(operator))["data"]["lease"]
    await robot.recv_until(lambda m: m["type"] == "lease" and m["lease"])
    await operator.send({"type": "heartbeat", "id": "hb", "robot": "r1", "lease_id": granted["id"]})
    renewed = await operator.recv_until(lambda m: m.get("ref") == "hb")
    assert renewed["data"]["lease"]["expires_at"] >= granted["expires_at"]
    renewal = await robot.recv_until(lambda m: m["type"] == "lease")
    assert renewal["lease"]["id"] == granted["id"]
    await operator.send({"type": "release", "id": "rel", "robot": "r1", "lease_id": granted["id"]})
    assert (await operator.recv_until(lambda m: m.get("ref") == "rel"))["ok"] is True
    ended = await robot.recv_until(lambda m: m["type"] == "lease" and m["lease"] is None)
    assert ended["reason"] == "released"
    intervention = await db(lambda: Intervention.objects.get(robot__name="r1"))
    assert intervention.state == "resolved" and intervention.trigger == "supervisor"


async def test_teleop_fallback_only_from_the_lease_holder(fleet, users, cleanup):
    robot, _ = await robot_socket(fleet.tokens["r1"])
    operator, _ = await fleet_socket(users["operator"])
    admin, _ = await fleet_socket(users["admin"])
    cleanup.extend([robot, operator, admin])
    lease_id = (await claim(operator))["data"]["lease"]["id"]
    await robot.recv_until(lambda m: m["type"] == "lease" and m["lease"])
    command = {"type": "teleop", "robot": "r1", "lease_id": lease_id, "seq": 1, "sent_ms": 1.0, "arm": "left",
               "vx": 0.0, "vy": 0.05, "vz": 0.0, "grip": None, "spin": 0.0}
    await operator.send(command)
    relayed = await robot.recv_until(lambda m: m["type"] == "teleop")
    assert relayed["seq"] == 1 and relayed["lease_id"] == lease_id and "robot" not in relayed
    await admin.send({**command, "seq": 2})
    error = await admin.recv_until(lambda m: m["type"] == "error")
    assert error["code"] == "forbidden"
    await admin.send({**command, "seq": 3, "lease_id": str(uuid.uuid4())})
    assert (await admin.recv_until(lambda m: m["type"] == "error"))["code"] == "stale_lease"
    assert await robot.nothing(0.3)


# ------------------------------------------------------------------ e-stop


async def test_estop_latches_until_an_authorized_person_clears_it(fleet, users, cleanup):
    robot, _ = await robot_socket(fleet.tokens["r1"])
    supervisor, _ = await fleet_socket(users["supervisor"])
    operator, _ = await fleet_socket(users["operator"])
    cleanup.extend([supervisor, operator])
    await operator.send({"type": "estop", "id": "e", "robot": "r1", "reason": "hand in the cell"})
    assert (await operator.recv_until(lambda m: m.get("ref") == "e"))["ok"] is True
    command = await robot.recv_until(lambda m: m["type"] == "command")
    assert command["command"] == "estop" and command["by"] == "operator"
    # A claim is refused while e-stopped; the operator may not clear it.
    assert (await claim(operator))["code"] == "estopped"
    await operator.send({"type": "clear_estop", "id": "c", "robot": "r1"})
    assert (await operator.recv_until(lambda m: m.get("ref") == "c"))["code"] == "forbidden"
    # The latch survives the robot reconnecting, even if the robot forgot it.
    await robot.close()
    robot, welcome = await robot_socket(fleet.tokens["r1"], estopped=False)
    cleanup.append(robot)
    assert welcome["estopped"] is True
    assert (await robot.recv_until(lambda m: m["type"] == "command"))["command"] == "estop"
    await supervisor.send({"type": "clear_estop", "id": "c2", "robot": "r1"})
    assert (await supervisor.recv_until(lambda m: m.get("ref") == "c2"))["ok"] is True
    assert (await robot.recv_until(lambda m: m["type"] == "command"))["command"] == "clear_estop"
    actions = await db(lambda: list(AuditEvent.objects.filter(robot__name="r1").values_list("action", flat=True)))
    assert "estop" in actions and "clear_estop" in actions


async def test_estop_ends_the_operators_lease_on_server_and_robot(fleet, users, cleanup):
    robot, _ = await robot_socket(fleet.tokens["r1"])
    supervisor, _ = await fleet_socket(users["supervisor"])
    operator, _ = await fleet_socket(users["operator"])
    cleanup.extend([robot, supervisor, operator])
    lease_id = (await claim(operator))["data"]["lease"]["id"]
    await robot.recv_until(lambda m: m["type"] == "lease" and m["lease"])
    await supervisor.send({"type": "estop", "id": "e", "robot": "r1"})
    assert (await supervisor.recv_until(lambda m: m.get("ref") == "e"))["ok"] is True
    ended = await robot.recv_until(lambda m: m["type"] == "lease")
    assert ended == {"type": "lease", "lease": None, "ended": lease_id, "reason": "estop"}
    status = await operator.recv_until(lambda m: m["type"] == "robot" and m["robot"]["estopped"] and m["robot"]["lease"] is None)
    assert status["robot"]["estopped_by"] == "supervisor"
    # The operator's page keeps heartbeating and sending its held keys: refused, nothing reaches the robot.
    command = {"type": "teleop", "robot": "r1", "lease_id": lease_id, "seq": 7, "vx": 0.1}
    for stage in ("latched", "cleared"):
        await operator.send({"type": "heartbeat", "id": f"hb-{stage}", "robot": "r1", "lease_id": lease_id})
        assert (await operator.recv_until(lambda m, stage=stage: m.get("ref") == f"hb-{stage}"))["code"] == "stale_lease"
        await operator.send({**command, "id": f"t-{stage}"})
        assert (await operator.recv_until(lambda m, stage=stage: m.get("ref") == f"t-{stage}"))["code"] == "stale_lease"
        if stage == "latched":
            await supervisor.send({"type": "clear_estop", "id": "c", "robot": "r1"})
            assert (await supervisor.recv_until(lambda m: m.get("ref") == "c"))["ok"] is True
            assert (await robot.recv_until(lambda m: m["type"] == "command" and m["command"] == "clear_estop"))
            command["seq"] += 1
    assert await robot.nothing(0.3)
    audit = await db(lambda: list(AuditEvent.objects.filter(action="lease_ended").values_list("detail", flat=True)))
    assert [event["reason"] for event in audit] == ["estop"]
    # A new claim is what moves the robot again.
    fresh = (await claim(operator))["data"]["lease"]["id"]
    assert fresh != lease_id and (await robot.recv_until(lambda m: m["type"] == "lease" and m["lease"]))["lease"]["id"] == fresh


async def test_robot_reported_estop_ends_the_lease(fleet, users, cleanup):
    robot, _ = await robot_socket(fleet.tokens["r1"])
    operator, _ = await fleet_socket(users["operator"])
    cleanup.extend([robot, operator])
    lease_id = (await claim(operator))["data"]["lease"]["id"]
    await robot.recv_until(lambda m: m["type"] == "lease" and m["lease"])
    await robot.send(telemetry(mode="estopped"))  # the robot's own e-stop button
    ended = await robot.recv_until(lambda m: m["type"] == "lease")
    assert ended["reason"] == "estop" and ended["ended"] == lease_id
    session = await db(lambda: ControlSession.objects.get(pk=lease_id))
    assert session.end_reason == "estop"
    assert await db(lambda: AuditEvent.objects.get(action="lease_ended").actor) == "robot:r1"


async def test_robot_latch_reported_in_hello_latches_the_server(fleet, users, cleanup):
    robot, welcome = await robot_socket(fleet.tokens["r3"], estopped=True)
    cleanup.append(robot)
    assert welcome["estopped"] is True
    assert await db(lambda: Robot.objects.get(name="r3").estopped)


async def test_robot_faults_and_warnings_reach_every_dashboard_at_once(fleet, users, cleanup):
    robot, _ = await robot_socket(fleet.tokens["r1"])
    supervisor, _ = await fleet_socket(users["supervisor"])
    operator, _ = await fleet_socket(users["operator"])
    cleanup.extend([robot, supervisor, operator])
    await robot.send({"type": "fault", "code": "torque_out_of_range", "detail": "9.4 N·m > 9.0"})
    for dash in (supervisor, operator):
        fault = await dash.recv_until(lambda m: m["type"] == "fault")
        assert fault["robot"] == "r1" and fault["code"] == "torque_out_of_range" and fault["detail"] == "9.4 N·m > 9.0"
    await robot.send({"type": "warning", "kind": "low_confidence", "detail": "confidence 0.62 < 0.70"})
    warning = await supervisor.recv_until(lambda m: m["type"] == "warning")
    assert warning["robot"] == "r1" and warning["kind"] == "low_confidence"
    assert await db(lambda: AuditEvent.objects.filter(action="fault", robot__name="r1").count()) == 1


async def test_a_dashboard_flooding_the_server_is_rate_limited_and_recovers(fleet, users, cleanup):
    dash, _ = await fleet_socket(users["supervisor"])
    cleanup.append(dash)
    for index in range(160):  # a page stuck in a loop: far above 50 a second, bursts of 100
        await dash.send({"type": "subscribe", "id": f"s{index}", "robots": ["r1"]})
    answers = [await dash.recv_until(lambda m, index=index: m.get("ref") == f"s{index}") for index in range(160)]
    limited = [a for a in answers if a["type"] == "error"]
    assert limited and all(a["code"] == "rate_limited" for a in limited)
    assert sum(1 for a in answers if a["type"] == "result") >= 100  # the burst passed
    await asyncio.sleep(0.5)  # the bucket refills: the page is served again
    await dash.send({"type": "ping", "id": "after", "sent_ms": 1.0})
    assert (await dash.recv_until(lambda m: m.get("ref") == "after" or m.get("id") == "after"))["type"] == "pong"


# ------------------------------------------------------------------ interventions


async def test_intervention_raised_reaches_dashboards_and_can_be_acknowledged(fleet, users, cleanup):
    robot, _ = await robot_socket(fleet.tokens["r1"])
    dash, _ = await fleet_socket(users["supervisor"])
    cleanup.extend([robot, dash])
    intervention_id = str(uuid.uuid4())
    raised = {"type": "intervention_raised", "intervention": intervention_id, "trigger": "policy_uncertainty",
              "severity": "high", "detail": "confidence 0.41 < 0.5", "episode": None}
    await robot.send(raised)
    await robot.send(raised)  # re-sent after a reconnect: idempotent
    alert = await dash.recv_until(lambda m: m["type"] == "intervention")
    assert alert["intervention"]["id"] == intervention_id and alert["intervention"]["state"] == "raised"
    await dash.send({"type": "ack", "id": "a", "intervention": intervention_id})
    assert (await dash.recv_until(lambda m: m.get("ref") == "a"))["data"]["state"] == "acknowledged"
    assert await db(lambda: Intervention.objects.filter(robot__name="r1").count()) == 1


# ------------------------------------------------------------------ signaling


async def test_signaling_is_relayed_between_one_viewer_and_the_robot(fleet, users, cleanup):
    robot, _ = await robot_socket(fleet.tokens["r1"])
    viewer, _ = await fleet_socket(users["supervisor"])
    other, _ = await fleet_socket(users["operator"])
    cleanup.extend([robot, other])
    await viewer.send({"type": "signal", "robot": "r1", "peer": "p1", "kind": "offer", "sdp": "v=0\r\n", "video": {"width": 320, "fps": 15}})
    offer = await robot.recv_until(lambda m: m["type"] == "signal")
    assert offer == {"type": "signal", "peer": "p1", "kind": "offer", "sdp": "v=0\r\n", "candidate": None, "video": {"width": 320, "fps": 15.0}}
    await robot.send({"type": "signal", "peer": "p1", "kind": "answer", "sdp": "v=0\r\nanswer"})
    answer = await viewer.recv_until(lambda m: m["type"] == "signal")
    assert answer["robot"] == "r1" and answer["kind"] == "answer" and answer["sdp"].endswith("answer")
    assert not any(m["type"] == "signal" for m in await drain(other))
    # A robot that cannot take another viewer says why; the page shows it.
    await viewer.send({"type": "signal", "robot": "r1", "peer": "p2", "kind": "offer", "sdp": "v=0\r\n"})
    assert (await robot.recv_until(lambda m: m["type"] == "signal"))["video"] is None  # full size at the robot's rate
    await robot.send({"type": "signal", "peer": "p2", "kind": "bye", "reason": "full", "detail": "8 viewers"})
    refused = await viewer.recv_until(lambda m: m["type"] == "signal")
    assert (refused["peer"], refused["kind"], refused["reason"], refused["detail"]) == ("p2", "bye", "full", "8 viewers")
    # Another viewer cannot hijack p1.
    await other.send({"type": "signal", "robot": "r1", "peer": "p1", "kind": "bye"})
    assert await robot.nothing(0.3)
    # The viewer's page closes: the robot hears bye for its peer.
    await viewer.close()
    bye = await robot.recv_until(lambda m: m["type"] == "signal")
    assert bye == {"type": "signal", "peer": "p1", "kind": "bye", "sdp": None, "candidate": None, "video": None}


async def test_offer_to_an_offline_robot_is_refused(fleet, users, cleanup):
    viewer, _ = await fleet_socket(users["supervisor"])
    cleanup.append(viewer)
    await viewer.send({"type": "signal", "id": "o", "robot": "r2", "peer": "p9", "kind": "offer", "sdp": "v=0\r\n"})
    assert (await viewer.recv_until(lambda m: m["type"] == "error"))["code"] == "robot_offline"


async def drain(socket: Any, quiet_s: float = 0.3) -> list[dict[str, Any]]:
    messages = []
    while not await socket.nothing(quiet_s):
        messages.append(await socket.recv())
    return messages


async def test_a_restarted_agent_closes_the_interventions_it_forgot(fleet, users, cleanup):
    from webapp.fleet.models import Intervention

    robot, _ = await robot_socket(fleet.tokens["r1"])
    cleanup.append(robot)
    kept, forgotten = str(uuid.uuid4()), str(uuid.uuid4())
    for intervention in (kept, forgotten):
        await robot.send({"type": "intervention_raised", "intervention": intervention, "trigger": "policy_uncertainty",
                          "severity": "high", "detail": "unsure", "episode": None})
    dashboard, _ = await fleet_socket(users["supervisor"])
    cleanup.append(dashboard)
    await robot.close()
    # The agent comes back having kept only one of them (it restarted in between, say).
    again, _ = await robot_socket(fleet.tokens["r1"], open_interventions=[kept])
    cleanup.append(again)
    update = await dashboard.recv_until(lambda m: m["type"] == "intervention" and m["intervention"]["id"] == forgotten)
    assert update["intervention"]["state"] == "resolved" and update["intervention"]["resolution"] == "gone_on_robot"
    states = await database_sync_to_async(lambda: dict(Intervention.objects.values_list("id", "state")))()
    assert states[uuid.UUID(kept)] == "raised" and states[uuid.UUID(forgotten)] == "resolved"


# ------------------------------------------------------------------ cycles


async def test_a_cycle_the_robot_reports_becomes_an_episode_with_its_clamped_actions(fleet, cleanup):
    robot, _ = await robot_socket(fleet.tokens["r1"])
    cleanup.append(robot)
    episode = str(uuid.uuid4())
    await robot.send({"type": "cycle_started", "episode": episode, "cycle_index": 4, "policy_version": "bc-sim-v2", "seed": 7, "started_t": 12.0})
    await robot.send({"type": "cycle_ended", "episode": episode, "outcome": "failure", "failure_mode": "dropped_nut", "duration_s": 8.5,
                      "intervened": False, "actions_clamped": 37})

    def stored() -> Any:
        from webapp.fleet.models import Episode

        return Episode.objects.filter(id=episode, ended_at__isnull=False).first()

    deadline = asyncio.get_running_loop().time() + 5
    while (row := await db(stored)) is None:
        assert asyncio.get_running_loop().time() < deadline, "the episode was not recorded"
        await asyncio.sleep(0.05)
    assert (row.outcome, row.failure_mode, row.duration_s, row.actions_clamped, row.cycle_index) == ("failure", "dropped_nut", 8.5, 37, 4)


async def test_a_failure_mode_the_robot_did_not_declare_is_refused_and_a_declared_one_recorded(fleet, cleanup):
    declared = {**FEATURES, "phases": ["reach", "grasp", "insert"], "failure_modes": [{"key": "dropped_part", "label": "Dropped part"}]}
    robot, _ = await robot_socket(fleet.tokens["r1"], features=declared)
    cleanup.append(robot)
    assert (await db(lambda: Robot.objects.get(name="r1").features))["phases"] == ["reach", "grasp", "insert"]

    def ended(episode: str) -> dict[str, Any]:
        return {"type": "cycle_ended", "episode": episode, "outcome": "failure", "duration_s": 3.0}

    def stored(episode: str) -> Any:
        from webapp.fleet.models import Episode

        return Episode.objects.filter(id=episode).values_list("outcome", "failure_mode").first()

    nut = str(uuid.uuid4())
    await robot.send({**ended(nut), "failure_mode": "dropped_nut"})  # another robot's vocabulary
    error = await robot.recv_until(lambda m: m["type"] == "error")
    assert error["code"] == "bad_message" and "dropped_nut" in error["message"] and "dropped_part, takt_overrun, fault, other" in error["message"]
    assert await db(lambda: stored(nut)) is None
    for mode in ("dropped_part", "takt_overrun"):  # its own and a generic one
        episode = str(uuid.uuid4())
        await robot.send({**ended(episode), "failure_mode": mode})
        deadline = asyncio.get_running_loop().time() + 5
        while (row := await db(lambda episode=episode: stored(episode))) is None:
            assert asyncio.get_running_loop().time() < deadline, "the episode was not recorded"
            await asyncio.sleep(0.05)
        assert row == ("failure", mode)
