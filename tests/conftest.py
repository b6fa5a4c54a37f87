"""Shared fixtures: the demo fleet, and WebSocket clients for robots and dashboards."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from foreman_protocol.messages import ProtocolError, parse_server_to_browser, parse_server_to_robot
from webapp.fleet.services.demo import DemoFleet, demo_seed
from webapp.fleet.services.users import api_token_issue

# The daphne server fixtures (daphne_env, daphne, own_daphne) for the agent, sim, learning and
# integration tests.
pytest_plugins = ["tests.servers"]

ORIGIN = (b"origin", b"http://localhost:8000")


@pytest.fixture
def fleet(db: Any) -> DemoFleet:
    return demo_seed(robots=3, password="foreman-test")


@pytest.fixture
def users(fleet: DemoFleet) -> dict[str, Any]:
    from django.contrib.auth import get_user_model

    return {u.username: u for u in get_user_model().objects.all()}


def hello(**overrides: Any) -> dict[str, Any]:
    message = {
        "type": "hello", "protocol": 1, "agent_version": "test", "cameras": ["head"],
        "capabilities": ["teleop"], "policy_version": "bc-sim-v1", "mode": "autonomous",
        "estopped": False, "lease_id": None,
    }
    message.update(overrides)
    return message


def telemetry(**overrides: Any) -> dict[str, Any]:
    message = {
        "type": "telemetry", "t": 1.0, "mode": "autonomous", "phase": "pick_left", "progress": 0.1,
        "cycle_index": 1, "confidence": 0.9, "takt_elapsed_s": 5.0, "takt_s": 76.0,
    }
    message.update(overrides)
    return message


class Socket:
    """A WebsocketCommunicator with JSON helpers and bounded waits. Every message the server sends
    is parsed with the protocol's parser for that direction: a message the other side could not
    read fails the test that made the server send it."""

    def __init__(self, communicator: WebsocketCommunicator, parse: Callable[[str], Any]) -> None:
        self.c = communicator
        self.parse = parse

    async def send(self, message: dict[str, Any] | str) -> None:
        await self.c.send_to(text_data=message if isinstance(message, str) else json.dumps(message))

    async def recv(self, timeout: float = 3.0) -> dict[str, Any]:
        text = await self.c.receive_from(timeout=timeout)
        try:
            self.parse(text)
        except ProtocolError as error:
            raise AssertionError(f"the server sent a message outside the protocol ({error.code}: {error.message}): {text[:300]}") from None
        return json.loads(text)

    async def recv_until(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0) -> dict[str, Any]:
        """Skip messages until one matches (telemetry batches and status pushes interleave)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError("no matching message before the timeout")
            message = await self.recv(timeout=remaining)
            if predicate(message):
                return message

    async def nothing(self, timeout: float = 0.3) -> bool:
        return await self.c.receive_nothing(timeout=timeout)

    async def close(self) -> None:
        await self.c.disconnect()


def application() -> Any:
    from webapp.asgi import application as app

    return app


async def robot_socket(token: str, greet: bool = True, **hello_overrides: Any) -> tuple[Socket, dict[str, Any] | None]:
    communicator = WebsocketCommunicator(application(), "/ws/robot/", headers=[(b"authorization", f"Bearer {token}".encode())])
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    socket = Socket(communicator, parse_server_to_robot)
    if not greet:
        return socket, None
    await socket.send(hello(**hello_overrides))
    welcome = await socket.recv_until(lambda m: m["type"] == "welcome")
    return socket, welcome


async def fleet_socket(user: Any, origin: tuple[bytes, bytes] | None = ORIGIN) -> tuple[Socket, dict[str, Any]]:
    token = await database_sync_to_async(api_token_issue)(user=user)
    headers = [(b"authorization", f"Bearer {token}".encode())]
    if origin:
        headers.append(origin)
    communicator = WebsocketCommunicator(application(), "/ws/fleet/", headers=headers)
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    socket = Socket(communicator, parse_server_to_browser)
    snapshot = await socket.recv()
    return socket, snapshot


@pytest.fixture
async def cleanup() -> AsyncIterator[list[Socket]]:
    sockets: list[Socket] = []
    yield sockets
    for socket in sockets:
        try:
            await socket.close()
        except Exception:  # noqa: BLE001 - teardown: a socket the test broke must not hide the test's own failure
            pass


@pytest.fixture(autouse=True)
async def close_db_connections_after_async_test() -> AsyncIterator[None]:
    """database_sync_to_async keeps a connection in its worker thread; close it so Postgres can drop the test DB."""
    yield
    from channels.layers import channel_layers
    from django.db import connections

    await database_sync_to_async(connections.close_all)()
    # Each test runs on its own event loop; a channel layer keeps loop-bound locks and pools, so
    # every test gets a fresh one (a socket left open by a failed test cannot poison the next).
    for layer in list(channel_layers.backends.values()):
        close_pools = getattr(layer, "close_pools", None)
        if close_pools is not None:
            await close_pools()
    channel_layers.backends.clear()


def wait_for_servers_to_settle(timeout_s: float = 10.0) -> None:
    """After a test with real servers they are still writing what its closed sockets caused (robot
    offline, leases ended, audit rows); the database flush's TRUNCATE racing those INSERTs deadlocks.
    Call from a teardown before the flush."""
    import time

    from webapp.fleet.models import ControlSession, Robot

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and (Robot.objects.filter(online=True).exists()
                                           or ControlSession.objects.filter(ended_at__isnull=True).exists()):
        time.sleep(0.1)
    time.sleep(0.5)


@pytest.fixture(scope="session")
def lerobot_python() -> Path:
    """LeRobot 0.4.4's own Python (scripts/lerobot_env.sh builds it once, cached outside the checkout)."""
    result = subprocess.run(["bash", str(Path(__file__).resolve().parents[1] / "scripts" / "lerobot_env.sh")],
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    return Path(result.stdout.strip().splitlines()[-1])
