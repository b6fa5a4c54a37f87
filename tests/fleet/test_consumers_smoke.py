import pytest

from tests.conftest import fleet_socket, robot_socket, telemetry

pytestmark = pytest.mark.django_db(transaction=True)


async def test_robot_telemetry_reaches_dashboard(fleet, users, cleanup):
    robot, welcome = await robot_socket(fleet.tokens["r1"])
    cleanup.append(robot)
    assert welcome["robot"] == "r1" and welcome["lease"] is None and welcome["estopped"] is False
    dash, snapshot = await fleet_socket(users["supervisor"])
    cleanup.append(dash)
    assert snapshot["type"] == "snapshot"
    assert {r["name"] for r in snapshot["robots"]} == {"r1", "r2", "r3"}
    await robot.send(telemetry(progress=0.5))
    batch = await dash.recv_until(lambda m: m["type"] == "telemetry_batch")
    assert batch["robots"]["r1"]["progress"] == 0.5
