"""Fault injection: the Redis behind the channel layer restarts (and loses everything it held) while a
robot and a dashboard are connected to daphne. Nothing is restarted by hand: once Redis is back, the
clients (reconnecting as the agent and the dashboard do) get full service from the same daphne
process — telemetry reaches the dashboard, a new alert arrives live, and the alert the robot raised
while Redis was down (daphne closes sockets whose channel layer failed; the agent re-sends what it
still waits on when it reconnects) is on the server and in a reconnecting dashboard's snapshot.

A private redis-server on a free loopback port, so the machine's shared Redis is never touched.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from channels.db import database_sync_to_async

from tests.conftest import hello, telemetry, wait_for_servers_to_settle
from tests.servers import DaphneServer, free_port
from webapp.fleet.services.users import api_token_issue

pytestmark = pytest.mark.django_db(transaction=True)

RECOVERY_S = 20.0  # how long clients may take to get service back once Redis is up again


class PrivateRedis:
    """redis-server on 127.0.0.1:port, no persistence: a restart loses every key, as a crash would."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (the machine's Redis package provides it)")
        self.process = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                                        stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as probe:
                    probe.sendall(b"PING\r\n")
                    if probe.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start; see {self.log_path}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def redis_and_daphne(daphne_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[PrivateRedis, DaphneServer]]:
    redis_server = PrivateRedis(tmp_path / "redis.log")
    redis_server.start()
    env = {**daphne_env, "REDIS_URL": f"redis://127.0.0.1:{redis_server.port}/0"}
    server = DaphneServer(env, tmp_path / "daphne.log")
    server.start()
    yield redis_server, server
    server.stop()
    redis_server.kill()


@pytest.fixture(autouse=True)
def servers_settle_before_flush(transactional_db: Any) -> Iterator[None]:
    yield
    wait_for_servers_to_settle()


class Reconnecting:
    """A WebSocket client that, like the agent's link and the dashboard's socket, reconnects (with a
    short back-off) whenever its connection is closed or refused. Like the agent, it sends its
    greeting and then every intervention it still waits on again on each new connection."""

    def __init__(self, url: str, headers: dict[str, str], greeting: dict[str, Any] | None) -> None:
        self.url, self.headers, self.greeting = url, headers, greeting
        self.ws: Any = None
        self.connections = 0
        self.open_interventions: list[dict[str, Any]] = []

    async def ensure(self, deadline: float) -> None:
        while self.ws is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"could not reconnect to {self.url}")
            try:
                self.ws = await websockets.connect(self.url, additional_headers=self.headers, open_timeout=3)
                if self.greeting is not None:
                    await self.ws.send(json.dumps(self.greeting))
                for message in self.open_interventions:
                    await self.ws.send(json.dumps(message))
                self.connections += 1
            except (TimeoutError, OSError, websockets.InvalidHandshake, websockets.ConnectionClosed):
                self.ws = None
                await asyncio.sleep(0.3)

    async def raise_intervention(self, message: dict[str, Any], deadline: float) -> None:
        self.open_interventions.append(message)  # resent on every reconnect, as the agent does
        await self.send(message, deadline)

    async def send(self, message: dict[str, Any], deadline: float) -> None:
        await self.ensure(deadline)
        try:
            await self.ws.send(json.dumps(message))
        except websockets.ConnectionClosed:
            self.ws = None

    async def until(self, predicate: Any, deadline: float, on_idle: Any = None) -> dict[str, Any]:
        """The first message matching predicate; on_idle() runs every 0.2 s without one (keep sending)."""
        while True:
            await self.ensure(deadline)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("no matching message before the deadline")
            try:
                message = json.loads(await asyncio.wait_for(self.ws.recv(), min(0.2, remaining)))
            except TimeoutError:
                if on_idle is not None:
                    await on_idle()
                continue
            except websockets.ConnectionClosed:
                self.ws = None
                continue
            if predicate(message):
                return message

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


async def test_clients_get_service_back_after_redis_restarts(redis_and_daphne, fleet, users):
    redis_server, server = redis_and_daphne
    base = server.url.replace("http", "ws")
    token = await database_sync_to_async(api_token_issue)(user=users["supervisor"])
    robot = Reconnecting(f"{base}/ws/robot/", {"Authorization": f"Bearer {fleet.tokens['r1']}"}, hello())
    dashboard = Reconnecting(f"{base}/ws/fleet/", {"Authorization": f"Bearer {token}", "Origin": server.url}, None)
    t = [0.0]

    async def beat() -> None:
        t[0] += 0.1
        await robot.send(telemetry(t=t[0], progress=round(t[0] % 1, 2)), time.monotonic() + RECOVERY_S)

    try:
        deadline = time.monotonic() + 10
        await robot.until(lambda m: m["type"] == "welcome", deadline)
        await dashboard.until(lambda m: m["type"] == "snapshot", deadline)
        await dashboard.until(lambda m: m["type"] == "telemetry_batch" and "r1" in m["robots"], deadline, on_idle=beat)

        redis_server.kill()
        # While Redis is down, the robot raises an alert: it must reach the server once it can, not be lost.
        lost_while_down = str(uuid.uuid4())
        await robot.raise_intervention({"type": "intervention_raised", "intervention": lost_while_down, "trigger": "fault", "severity": "high",
                          "detail": "raised while Redis was down", "episode": None}, time.monotonic() + 5)
        await asyncio.sleep(1.0)
        redis_server.start()

        deadline = time.monotonic() + RECOVERY_S
        robot_connections, dashboard_connections = robot.connections, dashboard.connections
        # Telemetry flows again from the robot to the dashboard through the same daphne.
        await dashboard.until(lambda m: m["type"] == "telemetry_batch" and "r1" in m["robots"] and m["robots"]["r1"]["t"] > t[0] - 1,
                              deadline, on_idle=beat)
        # A new alert arrives live.
        fresh = str(uuid.uuid4())
        await robot.raise_intervention({"type": "intervention_raised", "intervention": fresh, "trigger": "policy_uncertainty", "severity": "medium",
                          "detail": "after the restart", "episode": None}, deadline)
        alert = await dashboard.until(lambda m: m["type"] == "intervention" and m["intervention"]["id"] == fresh, deadline, on_idle=beat)
        assert alert["intervention"]["trigger"] == "policy_uncertainty"
        # The one raised while Redis was down is on the server, and a dashboard that (re)connects sees it.
        await dashboard.close()
        dashboard.ws = None
        snapshot = await dashboard.until(lambda m: m["type"] == "snapshot", deadline)
        open_ids = {item["id"] for item in snapshot["interventions"]}
        assert lost_while_down in open_ids and fresh in open_ids
        print(f"reconnects after the restart: robot {robot.connections - robot_connections}, "
              f"dashboard {dashboard.connections - dashboard_connections}")
    finally:
        await robot.close()
        await dashboard.close()
