"""Server fixtures for every test directory (a pytest plugin that tests/conftest.py loads): a real
daphne server (subprocess, 127.0.0.1 only) sharing the test database and the Redis channel layer
with the in-process dashboard sockets of tests/conftest.py, and polling helpers."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def terminate(process: subprocess.Popen[bytes] | None, grace_s: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `grace_s`."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


class DaphneServer:
    """`python -m daphne` on 127.0.0.1:port with the test settings; restartable on the same port."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.port = free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "webapp.asgi:application"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne exited with {self.process.returncode}; see {self.log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"daphne did not listen within {timeout} s; see {self.log_path}")

    def stop(self) -> None:
        terminate(self.process, grace_s=3)
        self.process = None


@pytest.fixture(scope="session")
def daphne_env(django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    from django.db import connection

    env = dict(os.environ)
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url:
        pytest.fail("agent server tests need DATABASE_URL/REDIS_URL (run them with scripts/test.sh)")
    test_db = connection.settings_dict["NAME"]
    env["DATABASE_URL"] = database_url.rsplit("/", 1)[0] + "/" + test_db
    env["FOREMAN_MEDIA_ROOT"] = str(tmp_path_factory.mktemp("media"))
    env["FOREMAN_LOG_LEVEL"] = "WARNING"
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="module")
def daphne(daphne_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaphneServer]:
    """One server for a test module (the database is emptied between tests, the server keeps no state)."""
    server = DaphneServer(daphne_env, tmp_path_factory.mktemp("daphne") / "daphne.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_daphne(daphne_env: dict[str, str], tmp_path: Path) -> Iterator[DaphneServer]:
    """A server this test may stop and start again (outages)."""
    server = DaphneServer(daphne_env, tmp_path / "daphne.log")
    server.start()
    yield server
    server.stop()


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll until predicate() holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


async def eventually_async(predicate: Callable[[], Awaitable[bool]], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


class Coturn:
    """Debian's coturn on loopback with coturn's REST-API credentials (`use-auth-secret`): the TURN
    server the webapp mints short-lived credentials for. Relays between loopback peers only."""

    def __init__(self, secret: str, log_path: Path, port: int | None = None) -> None:
        self.secret = secret
        self.port = port or free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    def start(self) -> Coturn:
        executable = shutil.which("turnserver")
        if executable is None:
            message = "Debian's coturn is required for the TURN test (apt-get install coturn; .ci/run installs it)"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        self.process = subprocess.Popen(
            [executable, "-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", f"--listening-port={self.port}",
             "--min-port=40000", "--max-port=40999", "--use-auth-secret", f"--static-auth-secret={self.secret}", "--realm=foreman.test",
             "--no-tls", "--no-dtls", "--no-cli", "--allow-loopback-peers", "--fingerprint", "--no-multicast-peers",
             "--log-file=stdout", "--simple-log", "--verbose", f"--pidfile={self.log_path.with_suffix('.pid')}",
             f"--userdb={self.log_path.with_suffix('.db')}"],
            stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 15
        while "Total General servers" not in self.log():  # after its UDP and TCP listeners opened
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"coturn did not start; see {self.log_path}:\n{self.log()[-2000:]}")
            time.sleep(0.1)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        terminate(self.process, grace_s=10)


class Janus:
    """Debian's Janus (VideoRoom + WebSockets, signed-token auth) on loopback, configured by the
    server's own generator (webapp/fleet/janus_config.py). Only in a loopback-only namespace (the
    browser suite's): Janus gathers on 127.0.0.1 through a veth there (prepare_loopback_interface)."""

    def __init__(self, directory: Path, token_secret: str, admin_key: str) -> None:
        self.directory = directory
        self.token_secret = token_secret
        self.admin_key = admin_key
        self.port = free_port()
        self.log_path = directory / "janus.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> Janus:
        from webapp.fleet.janus_config import prepare_loopback_interface, start_janus

        if shutil.which("janus") is None:
            message = "Debian's janus is required for the SFU tests (apt-get install janus; .ci/run installs it)"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        rtp = 42000 + (self.port % 50) * 100  # a range of its own, so two Janus never share one
        try:
            self.process = start_janus(self.directory, ws_port=self.port, token_secret=self.token_secret, admin_key=self.admin_key,
                                       rtp_ports=(rtp, rtp + 99), interfaces=prepare_loopback_interface())
        except RuntimeError as error:
            pytest.fail(str(error))
        return self

    def stop(self) -> None:
        terminate(self.process, grace_s=10)
