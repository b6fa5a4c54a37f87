"""`manage.py demo` (what `make run` calls) and the token commands, run as people run them."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from http.cookiejar import CookieJar
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from webapp.fleet.models import Robot
from webapp.fleet.services.demo import demo_seed
from webapp.fleet.tokens import hash_token

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def embedded_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The demo's embedded defaults: SQLite, in-memory channel layer, no Redis — in a directory that
    does not exist yet, as var/ in a fresh clone."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "FOREMAN_TEST_DB_NAME"}}
    env.update(FOREMAN_SQLITE_PATH=str(tmp_path / "var" / "demo.sqlite3"), FOREMAN_MEDIA_ROOT=str(tmp_path / "media"), **extra)
    return env


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "demo", "--robots", "2", "--port", str(port), "--no-agents", "--exit-after", "60"],
        cwd=ROOT, env=embedded_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
        # Started as a shell starts a background job: SIGINT ignored, which exec keeps. Ctrl-C must
        # stop the demo all the same (it once ignored the SIGINT and orphaned its children).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/accounts/login/", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            if process.poll() is not None:
                pytest.fail(f"demo exited early:\n{process.stdout.read() if process.stdout else ''}")
            time.sleep(0.3)
    else:
        process.kill()
        pytest.fail("the demo server did not answer within 45 s")
    try:
        yield url, process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C, as a person stops it
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)


def test_demo_serves_login_and_its_robots_then_stops_cleanly_on_ctrl_c(demo_server: tuple[str, subprocess.Popen[str]]) -> None:
    url, process = demo_server
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    page = opener.open(f"{url}/accounts/login/", timeout=5).read().decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert csrf, "login page has a CSRF form"
    body = f"username=supervisor&password=foreman&csrfmiddlewaretoken={csrf.group(1)}".encode()
    request = urllib.request.Request(f"{url}/accounts/login/", data=body, headers={"Referer": f"{url}/accounts/login/"})
    opener.open(request, timeout=5)
    robots = json.loads(opener.open(f"{url}/api/robots", timeout=5).read())
    assert sorted(robot["name"] for robot in robots) == ["r1", "r2"]
    assert all(not robot["online"] for robot in robots), "--no-agents: nothing connected"

    os.killpg(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=20)
    assert "Foreman demo running at" in output and "password: foreman" in output
    assert "demo stopped" in output
    assert process.returncode == 0, output[-2000:]
    with pytest.raises(OSError):  # its daphne went with it
        urllib.request.urlopen(f"{url}/healthz", timeout=2)


def test_demo_refuses_the_well_known_password_when_debug_is_off(tmp_path: Path) -> None:
    env = embedded_env(tmp_path, FOREMAN_DEBUG="0", FOREMAN_SECRET_KEY="x" * 50)
    result = subprocess.run(
        [sys.executable, "manage.py", "demo", "--robots", "1", "--port", str(free_port()), "--no-agents", "--exit-after", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "refusing the well-known demo password" in result.stderr


@pytest.mark.django_db
def test_robot_token_command_rotates_the_token_and_shows_it_once(capsys: pytest.CaptureFixture[str]) -> None:
    fleet = demo_seed(robots=1, password="pw-for-tests")
    old = fleet.tokens["r1"]
    call_command("robot_token", "r1")
    new = capsys.readouterr().out.strip()
    assert new and new != old
    robot = Robot.objects.get(name="r1")
    assert robot.token_hash == hash_token(new), "stored hashed, never in clear"
    assert new not in robot.token_hash
    with pytest.raises(CommandError, match="r9"):
        call_command("robot_token", "r9")


@pytest.mark.django_db
def test_api_token_command_issues_a_working_personal_token(capsys: pytest.CaptureFixture[str]) -> None:
    from django.test import Client

    demo_seed(robots=1, password="pw-for-tests")
    call_command("api_token", "supervisor")
    token = capsys.readouterr().out.strip()
    assert token.startswith("fut_")
    client = Client()
    assert client.get("/api/robots", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    assert client.get("/api/robots", HTTP_AUTHORIZATION=f"Bearer {token}x").status_code == 401
    with pytest.raises(CommandError, match="nobody"):
        call_command("api_token", "nobody")
    call_command("api_token", "--revoke", token)
    assert capsys.readouterr().out.strip() == "revoked"
    assert client.get("/api/robots", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401
    with pytest.raises(CommandError, match="already revoked"):
        call_command("api_token", "--revoke", token)
