"""Two daphne processes sharing one Postgres and one Redis channel layer, with real WebSocket clients:
a robot on server A and dashboards on server B see each other's traffic, custody and e-stop work
across the processes, and a real Celery worker answers /healthz and runs the lease sweep."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from channels.db import database_sync_to_async

from tests.conftest import hello, telemetry, wait_for_servers_to_settle
from tests.servers import ROOT, DaphneServer
from webapp.fleet.services.users import api_token_issue

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def two_servers(daphne_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DaphneServer, DaphneServer]]:
    logs = tmp_path_factory.mktemp("two-daphnes")
    a, b = DaphneServer(daphne_env, logs / "a.log"), DaphneServer(daphne_env, logs / "b.log")
    a.start()
    b.start()
    yield a, b
    a.stop()
    b.stop()


class Client:
    """A real WebSocket client with bounded waits."""

    def __init__(self, connection: Any) -> None:
        self.ws = connection

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def until(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("no matching message before the timeout")
            message = json.loads(await asyncio.wait_for(self.ws.recv(), remaining))
            if predicate(message):
                return message


@pytest.fixture(autouse=True)
def servers_settle_before_flush(transactional_db: Any) -> Iterator[None]:
    yield
    wait_for_servers_to_settle()


async def connect_robot(server: DaphneServer, token: str) -> Client:
    ws = await websockets.connect(server.url.replace("http", "ws") + "/ws/robot/", additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=5)
    client = Client(ws)
    await client.send(hello())
    await client.until(lambda m: m["type"] == "welcome")
    return client


async def connect_dashboard(server: DaphneServer, user: Any) -> tuple[Client, dict[str, Any]]:
    token = await database_sync_to_async(api_token_issue)(user=user)
    ws = await websockets.connect(
        server.url.replace("http", "ws") + "/ws/fleet/", open_timeout=5,
        additional_headers={"Authorization": f"Bearer {token}", "Origin": server.url},
    )
    client = Client(ws)
    snapshot = await client.until(lambda m: m["type"] == "snapshot")
    return client, snapshot


async def test_robot_on_one_server_dashboards_on_another(two_servers, fleet, users):
    a, b = two_servers
    robot = await connect_robot(a, fleet.tokens["r1"])
    watcher, snapshot = await connect_dashboard(b, users["supervisor"])
    operator, _ = await connect_dashboard(b, users["operator"])
    try:
        assert next(r for r in snapshot["robots"] if r["name"] == "r1")["online"] is True
        await robot.send(telemetry(progress=0.4, confidence=0.8))
        batch = await watcher.until(lambda m: m["type"] == "telemetry_batch" and "r1" in m["robots"])
        assert batch["robots"]["r1"]["progress"] == 0.4

        intervention = str(uuid.uuid4())
        await robot.send({"type": "intervention_raised", "intervention": intervention, "trigger": "fault",
                          "severity": "high", "detail": "torque out of range", "episode": None})
        alert = await watcher.until(lambda m: m["type"] == "intervention")
        assert alert["intervention"]["id"] == intervention

        await operator.send({"type": "claim", "id": "c", "robot": "r1", "mode": "teleop"})
        lease = (await operator.until(lambda m: m.get("ref") == "c"))["data"]["lease"]
        assert (await robot.until(lambda m: m["type"] == "lease"))["lease"]["id"] == lease["id"]

        await operator.send({"type": "teleop", "robot": "r1", "lease_id": lease["id"], "seq": 1, "sent_ms": 1.0,
                             "arm": "right", "vx": 0.01, "vy": 0.0, "vz": 0.0, "grip": None, "spin": 0.0})
        assert (await robot.until(lambda m: m["type"] == "teleop"))["arm"] == "right"

        await operator.ws.close()  # the operator's browser goes away on server B
        ended = await robot.until(lambda m: m["type"] == "lease" and m["lease"] is None)
        assert ended["reason"] == "operator_disconnected"

        await watcher.send({"type": "estop", "id": "e", "robot": "r1"})
        assert (await robot.until(lambda m: m["type"] == "command"))["command"] == "estop"
    finally:
        for client in (robot, watcher, operator):
            await client.ws.close()


def test_healthz_reports_each_part(two_servers, fleet):
    a, _ = two_servers
    try:
        with urllib.request.urlopen(a.url + "/healthz", timeout=10) as response:
            status, body = response.status, json.load(response)
    except urllib.error.HTTPError as error:  # 503 when a part is down (no Celery worker here)
        status, body = error.code, json.load(error)
    assert body["checks"]["database"] == {**body["checks"]["database"], "ok": True, "vendor": "postgresql"}
    assert body["checks"]["channel_layer"]["ok"] is True and body["checks"]["channel_layer"]["backend"] == "RedisChannelLayer"
    assert body["checks"]["celery"]["mode"] == "broker"
    assert status == (200 if body["checks"]["celery"]["ok"] else 503)


@pytest.fixture
def celery_worker(daphne_env: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = open(tmp_path / "celery.log", "wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "webapp", "worker", "--pool", "solo", "--concurrency", "1",
         "--without-gossip", "--without-mingle", "--loglevel", "WARNING", "-n", f"test-{os.getpid()}@localhost"],
        cwd=ROOT, env=daphne_env, stdout=log, stderr=subprocess.STDOUT,
    )
    yield worker
    worker.terminate()
    try:
        worker.wait(timeout=10)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(timeout=5)


def test_real_celery_worker_runs_the_lease_sweep_and_answers_healthz(celery_worker, two_servers, fleet, users):
    from datetime import timedelta

    from django.utils import timezone

    from webapp.fleet.models import ControlSession, Robot
    from webapp.fleet.tasks import expire_stale_leases, ping

    assert ping.apply_async().get(timeout=30) == "pong"  # the worker is up and consuming our queue
    Robot.objects.filter(name="r2").update(online=True)
    lease = ControlSession.objects.create(
        robot=Robot.objects.get(name="r2"), user=users["operator"], mode="teleop",
        started_at=timezone.now() - timedelta(seconds=30), expires_at=timezone.now() - timedelta(seconds=1),
    )
    assert expire_stale_leases.apply_async().get(timeout=30) == 1
    lease.refresh_from_db()
    assert lease.end_reason == "expired" and lease.ended_at is not None

    a, _ = two_servers
    with urllib.request.urlopen(a.url + "/healthz", timeout=10) as response:
        body = json.load(response)
    assert body["ok"] is True and body["checks"]["celery"]["workers"] >= 1
