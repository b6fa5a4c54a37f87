"""Browser tests: the demo (server + simulated robots, embedded defaults) driven by Debian's
chromium through Playwright. scripts/test.sh runs these inside a loopback-only network namespace."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Demo:
    url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]

    def manage(self, *args: str) -> str:
        """Run a manage.py command against the demo's database (the test process has none)."""
        result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout


def start_demo(directory: Path, *args: str, env: dict[str, str] | None = None) -> Demo:
    """`manage.py demo ARGS --port P` on SQLite and the in-memory channel layer in `directory`
    (its log: directory/demo.log), once it answers. `env` is added to its environment (and its
    agents', which inherit it)."""
    demo_env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "FOREMAN_TEST_DB_NAME"}}
    demo_env.update(FOREMAN_SQLITE_PATH=str(directory / "demo.sqlite3"), FOREMAN_MEDIA_ROOT=str(directory / "media"),
                    FOREMAN_LOG_LEVEL="WARNING")
    demo_env.update(env or {})
    env = demo_env
    port = free_port()
    log = open(directory / "demo.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "demo", *args, "--port", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/accounts/login/", timeout=2).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the demo did not start; see {directory / 'demo.log'}")
            time.sleep(0.3)
    return Demo(url, env, process)


def stop_demo(demo: Demo) -> None:
    os.killpg(demo.process.pid, signal.SIGINT)
    try:
        demo.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(demo.process.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """`manage.py demo` with 2 simulated robots on SQLite and the in-memory channel layer."""
    running = start_demo(tmp_path_factory.mktemp("demo"), "--robots", "2", "--time-scale", "4", "--exit-after", "900")
    yield running
    stop_demo(running)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("FOREMAN_CHROMIUM") or shutil.which("chromium")
    if not executable:
        pytest.fail("Debian's chromium is required for the browser tests (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--allow-loopback-in-peer-connection",
                  # Without this, Chromium hides host candidates behind mDNS names, which never
                  # resolve in a loopback-only namespace: ICE gathering hangs.
                  "--disable-features=WebRtcHideLocalIpsWithMdns"],
        )
        yield browser
        browser.close()


OPEN_PAGES: list[Any] = []


def logged_in_page(browser: Any, demo: Demo, username: str, landing: str = "/") -> Any:
    page = browser.new_page(viewport={"width": 1280, "height": 760})
    return log_in(page, demo.url, username, landing)


def log_in(page: Any, url: str, username: str, landing: str = "/") -> Any:
    """Log `page` in as a demo user (password foreman) and land on `landing`; kept for failure screenshots."""
    OPEN_PAGES.append(page)
    page.set_default_timeout(15_000)
    page.goto(f"{url}/accounts/login/?next={landing}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "foreman")
    page.click("button[type=submit]")
    page.wait_for_url(lambda current: "/accounts/login/" not in current)
    return page


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture(autouse=True)
def close_db_connections_after_async_test() -> Iterator[None]:
    """Overrides tests/conftest.py's async autouse fixture: Playwright's sync API runs its own event
    loop in this thread, and the browser tests have no database connection of their own."""
    yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call" and report.failed:
        for index, page in enumerate(OPEN_PAGES):
            try:
                if not page.is_closed():
                    screenshot(page, f"FAILED-{item.name}-{index}")
            except Exception:  # noqa: BLE001 - a screenshot must not hide the real failure
                pass
    if report.when == "teardown":
        OPEN_PAGES.clear()
    return report
