"""Fleet administration (#17 section 4): sites, lines, stations and robots made, edited and retired
through /api/fleet/ and manage.py, robot tokens issued, rotated and revoked (a live connection made
with a dead token is closed), every change audited, and retiring refused while something depends on
it. Runs on Postgres + Redis."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.core.management import CommandError, call_command
from django.test import Client

from tests.conftest import fleet_socket, robot_socket
from webapp.fleet.models import AuditEvent, Intervention, Robot, Station
from webapp.fleet.selectors import fleet_robots
from webapp.fleet.services.auth import robot_authenticate
from webapp.fleet.services.demo import LINE, SITE
from webapp.fleet.services.users import api_token_issue


def as_user(user: Any) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {api_token_issue(user=user)}"}


def send(client: Client, method: str, path: str, headers: dict[str, str], body: dict[str, Any] | None = None) -> Any:
    return getattr(client, method)(path, json.dumps(body or {}), content_type="application/json", **headers)


@pytest.mark.django_db
def test_an_admin_builds_a_station_and_its_robot_and_every_change_is_audited(fleet, users):
    client, admin = Client(), as_user(users["admin"])
    assert send(client, "post", "/api/fleet/sites", admin, {"name": "Plant B"}).status_code == 200
    assert send(client, "post", "/api/fleet/sites/Plant%20B/lines", admin, {"name": "Line 7"}).status_code == 200
    made = send(client, "post", "/api/fleet/stations", admin,
                {"site": "Plant B", "line": "Line 7", "name": "press-3", "task": "press-fit bearings", "takt_s": 40})
    assert made.status_code == 200, made.content
    robot = send(client, "post", "/api/fleet/robots", admin, {"name": "arm7", "station": "press-3"})
    assert robot.status_code == 200, robot.content
    token = robot.json()["token"]
    assert token.startswith("frt_") and robot_authenticate(token).name == "arm7"

    layout = client.get("/api/fleet/layout", **admin).json()
    site = next(s for s in layout["sites"] if s["name"] == "Plant B")
    station = site["lines"][0]["stations"][0]
    assert station["name"] == "press-3" and station["takt_s"] == 40.0
    assert [r["name"] for r in station["robots"]] == ["arm7"]
    assert station["robots"][0]["token_prefix"] == token[:8] and token not in json.dumps(layout)  # the token is shown once
    nut = next(s for s in layout["sites"] if s["name"] == "Die-casting workshop")["lines"][0]["stations"]
    assert {r["name"] for st in nut for r in st["robots"]} == {"r1", "r2", "r3"}  # which robot is on which station

    edited = send(client, "patch", "/api/fleet/stations/press-3", admin, {"takt_s": 45, "task": "press-fit two bearings"})
    assert edited.status_code == 200 and Station.objects.get(name="press-3").takt_s == 45.0
    moved = send(client, "patch", "/api/fleet/robots/r3", admin, {"station": "press-3"})
    assert moved.status_code == 200 and Robot.objects.get(name="r3").station.name == "press-3"

    actions = list(AuditEvent.objects.filter(actor="admin").order_by("at").values_list("action", flat=True))
    for action in ("site_created", "line_created", "station_created", "robot_created", "robot_token_issued", "station_updated", "robot_assigned"):
        assert action in actions, (action, actions)
    update = AuditEvent.objects.get(action="station_updated")
    assert update.detail["changes"]["takt_s"] == {"from": 40.0, "to": 45.0} and update.source.startswith("http")


@pytest.mark.django_db
def test_only_admins_change_the_fleet_and_bad_input_changes_nothing(fleet, users):
    client = Client()
    for role in ("supervisor", "operator", "labeler"):
        assert send(client, "post", "/api/fleet/robots", as_user(users[role]), {"name": "sneaky"}).status_code == 403
    admin = as_user(users["admin"])
    bad = [
        ("post", "/api/fleet/robots", {"name": "Has Spaces"}, 422),
        ("post", "/api/fleet/robots", {"name": "r1"}, 409),  # taken
        ("post", "/api/fleet/robots", {"name": "r9", "station": "no-such-station"}, 404),
        ("post", "/api/fleet/stations", {"site": "Die-casting workshop", "line": "Line 1", "name": "nut-9", "task": "x", "takt_s": 0}, 422),
        ("post", "/api/fleet/stations", {"site": "Die-casting workshop", "line": "Line 1", "name": "a/b", "task": "x", "takt_s": 5}, 422),
        ("post", "/api/fleet/stations", {"site": "Die-casting workshop", "line": "Line 1", "name": "nut-1", "task": "x", "takt_s": 5}, 409),
        ("post", "/api/fleet/sites", {"name": "   "}, 422),
        ("post", "/api/fleet/sites", {"name": "Plant\u0000B"}, 422),  # PostgreSQL cannot store a NUL (found by schemathesis)
        ("post", "/api/fleet/sites", {"name": "Plant\x07B"}, 422),
        ("patch", "/api/fleet/stations/nut-1", {"site": "Die-casting workshop"}, 422),  # a move needs the line too
    ]
    before = (Robot.objects.count(), Station.objects.count(), AuditEvent.objects.count())
    for method, path, body, status in bad:
        response = send(client, method, path, admin, body)
        assert response.status_code == status, (path, body, response.content)
        assert response.json()["detail"]
    assert (Robot.objects.count(), Station.objects.count(), AuditEvent.objects.count()) == before


@pytest.mark.django_db
def test_retiring_is_refused_while_something_depends_on_it_and_then_keeps_the_history(fleet, users):
    from django.utils import timezone

    from webapp.fleet.services.custody import robot_claim_control

    client, admin = Client(), as_user(users["admin"])
    refused = send(client, "post", "/api/fleet/stations/nut-1/retire", admin)
    assert refused.status_code == 409 and refused.json()["robots"] == ["r1", "r2", "r3"]
    assert "move or retire r1, r2, r3 first" in refused.json()["detail"]
    assert send(client, "post", "/api/fleet/sites/Die-casting%20workshop/retire", admin).status_code == 409

    Robot.objects.filter(name="r1").update(online=True)
    lease = robot_claim_control(robot_name="r1", user=users["operator"], mode="teleop")
    held = send(client, "post", "/api/fleet/robots/r1/retire", admin)
    assert held.status_code == 409 and held.json()["holder"] == "operator" and "hand it back" in held.json()["detail"]
    lease.ended_at = timezone.now()
    lease.save()

    Intervention.objects.filter(robot__name="r1").update(state="resolved")  # the takeover's own, closed with the lease
    Intervention.objects.create(robot=Robot.objects.get(name="r1"), trigger="fault", raised_at=timezone.now())
    waiting = send(client, "post", "/api/fleet/robots/r1/retire", admin)
    assert waiting.status_code == 409 and waiting.json()["open_interventions"] == 1 and "resolve it first" in waiting.json()["detail"]
    Intervention.objects.filter(robot__name="r1").update(state="resolved")

    token = fleet.tokens["r1"]
    assert send(client, "post", "/api/fleet/robots/r1/retire", admin).status_code == 200
    retired = Robot.objects.get(name="r1")
    assert retired.retired_at is not None and robot_authenticate(token) is None
    assert "r1" not in [r["name"] for r in fleet_robots()] and "r1" not in json.dumps(client.get("/api/fleet/layout", **admin).json())
    assert AuditEvent.objects.filter(action="robot_retired", robot=retired).exists()  # its history stays attached
    again = send(client, "post", "/api/fleet/robots", admin, {"name": "r1"})
    assert again.status_code == 409 and "retired" in again.json()["detail"]


@pytest.mark.django_db(transaction=True)
async def test_rotating_or_revoking_a_token_closes_the_robots_connection(fleet, users, cleanup):
    admin = await database_sync_to_async(as_user)(users["admin"])
    dash, _ = await fleet_socket(users["supervisor"])
    robot, _ = await robot_socket(fleet.tokens["r2"])
    cleanup.extend([dash, robot])

    rotated = await database_sync_to_async(send)(Client(), "post", "/api/fleet/robots/r2/token", admin)
    assert rotated.status_code == 200
    assert await robot.c.receive_output(timeout=3) == {"type": "websocket.close", "code": 4401}
    await robot.close()
    new_token = rotated.json()["token"]
    assert new_token != fleet.tokens["r2"]
    assert await database_sync_to_async(robot_authenticate)(fleet.tokens["r2"]) is None  # the old token is dead

    robot, _ = await robot_socket(new_token)
    cleanup.append(robot)
    revoked = await database_sync_to_async(send)(Client(), "delete", "/api/fleet/robots/r2/token", admin)
    assert revoked.status_code == 200
    assert await robot.c.receive_output(timeout=3) == {"type": "websocket.close", "code": 4401}
    offline = await dash.recv_until(lambda m: m["type"] == "robot" and m["robot"]["name"] == "r2" and not m["robot"]["online"])
    assert offline["robot"]["retired"] is False
    assert await database_sync_to_async(robot_authenticate)(new_token) is None

    retire = await database_sync_to_async(send)(Client(), "post", "/api/fleet/robots/r3/retire", admin)
    assert retire.status_code == 200
    gone = await dash.recv_until(lambda m: m["type"] == "robot" and m["robot"]["name"] == "r3")
    assert gone["robot"]["retired"] is True  # the dashboards drop its tile


@pytest.mark.django_db(transaction=True)
async def test_a_connected_robot_learns_its_stations_new_takt_at_once(fleet, users, cleanup):
    admin = await database_sync_to_async(as_user)(users["admin"])
    robot, welcome = await robot_socket(fleet.tokens["r1"])
    other, _ = await robot_socket(fleet.tokens["r2"])
    cleanup.extend([robot, other])
    assert welcome is not None and welcome["station"] == {"name": "nut-1", "takt_s": 76.0}

    edited = await database_sync_to_async(send)(Client(), "patch", "/api/fleet/stations/nut-1", admin, {"takt_s": 70.0})
    assert edited.status_code == 200
    for socket in (robot, other):  # every robot on the station
        assert (await socket.recv_until(lambda m: m["type"] == "station"))["station"] == {"name": "nut-1", "takt_s": 70.0}

    await database_sync_to_async(send)(Client(), "post", "/api/fleet/stations", admin,
                                       {"site": SITE, "line": LINE, "name": "nut-2", "task": "nuts", "takt_s": 60.0})
    moved = await database_sync_to_async(send)(Client(), "patch", "/api/fleet/robots/r1", admin, {"station": "nut-2"})
    assert moved.status_code == 200
    assert (await robot.recv_until(lambda m: m["type"] == "station"))["station"] == {"name": "nut-2", "takt_s": 60.0}
    await database_sync_to_async(send)(Client(), "patch", "/api/fleet/robots/r1", admin, {"station": None})
    assert (await robot.recv_until(lambda m: m["type"] == "station"))["station"] is None
    # An edit that changes neither name nor takt tells nobody.
    await database_sync_to_async(send)(Client(), "patch", "/api/fleet/stations/nut-1", admin, {"task": "nuts, both sides"})
    assert await other.nothing(0.5)


@pytest.mark.django_db
def test_manage_py_fleet_does_the_same_through_the_same_services(fleet):
    def run(*args: str) -> str:
        out = io.StringIO()
        call_command("fleet", *args, stdout=out, stderr=io.StringIO())
        return out.getvalue()

    run("site", "add", "Plant C")
    run("line", "add", "Plant C", "Line 2")
    assert "40 s takt" in run("station", "add", "Plant C", "Line 2", "press-3", "--task", "press-fit bearings", "--takt", "40")
    token = run("robot", "add", "arm8", "--station", "press-3").strip()
    assert robot_authenticate(token).name == "arm8"
    listing = run("list")
    assert "press-3 (40 s takt): press-fit bearings" in listing and f"arm8  offline  token {token[:8]}" in listing and token not in listing
    with pytest.raises(CommandError, match="still has robots: move or retire arm8 first"):
        run("station", "retire", "press-3")
    assert "arm8 is on no station" in run("robot", "assign", "arm8", "--none")
    run("station", "edit", "press-3", "--takt", "42")
    assert Station.objects.get(name="press-3").takt_s == 42.0
    run("station", "retire", "press-3")
    out = io.StringIO()
    call_command("robot_token", "arm8", "--revoke", stdout=out)
    assert "revoked" in out.getvalue() and robot_authenticate(token) is None
    run("robot", "retire", "arm8")
    assert AuditEvent.objects.filter(actor="manage.py", action__in=["station_retired", "robot_retired", "robot_token_revoked"]).count() == 3
    with pytest.raises(CommandError, match="exists"):
        run("robot", "add", "arm8")
