"""bench teleop: browser key event → the agent applies the command, over the WebRTC data channel
and over the WebSocket fallback.

Real parts: daphne (embedded settings), the robot agent (in this process, so the moment it
accepts each command can be read), Debian's Chromium driving the real robot page by key presses.
The page stamps each command with its epoch clock when the key goes down or up (it sends at once,
not at its next 50 ms tick); the agent's acceptance time minus that stamp, on one machine's
clock, is the latency. Runs inside a loopback-only network namespace (re-executes itself there).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import finish, in_namespace, percentile, reexec_isolated, start_demo, stop_demo

ROOT = Path(__file__).resolve().parents[1]
PRESSES = 120


def drive(url: str, samples: dict[str, list[float]], phase: list[str], errors: list[str]) -> None:
    """The browser side, in its own thread (Playwright's sync API)."""
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                                 args=["--no-sandbox", "--allow-loopback-in-peer-connection",
                                                       "--disable-features=WebRtcHideLocalIpsWithMdns"])
            page = browser.new_page()
            page.goto(f"{url}/accounts/login/?next=/robots/r1/")
            page.fill("input[name=username]", "operator")
            page.fill("input[name=password]", "foreman")
            page.click("button[type=submit]")
            page.wait_for_function("window.foreman && window.foreman.player && window.foreman.player.teleop && "
                                   "window.foreman.player.teleop.readyState === 'open'", timeout=60_000)
            page.locator("#claim-teleop:not([disabled])").click(timeout=30_000)
            page.locator("#teleop").wait_for(state="visible")
            for name in ("datachannel", "websocket"):
                if name == "websocket":
                    page.evaluate("window.foreman.player.teleop.close()")  # the page falls back to the WebSocket
                    time.sleep(0.5)
                phase[0] = name
                for _ in range(PRESSES):
                    page.keyboard.down("r")
                    time.sleep(0.04)
                    page.keyboard.up("r")
                    time.sleep(0.04)
                phase[0] = ""
            page.click("#release")
            browser.close()
    except Exception as error:  # noqa: BLE001 - reported by the bench, not swallowed
        errors.append(f"{type(error).__name__}: {error}")


async def measure(url: str, token: str, state: Path) -> dict[str, list[float]]:
    from foreman_learning.policies.factory import load_policy
    from robot_agent.__main__ import build_policy, build_robot
    from robot_agent.agent import Agent
    from robot_agent.config import load_config

    config = load_config(["--server", url, "--token", token, "--sim", "--ice-loopback", "--state-dir", str(state), "--name", "r1"])
    robot = build_robot(config)
    agent = Agent(config, robot, build_policy(config, robot), load_policy=load_policy)
    samples: dict[str, list[float]] = {"datachannel": [], "websocket": []}
    phase = [""]
    accept = agent.modes.teleop

    def timed(command: Any) -> str | None:
        refused = accept(command)
        if refused is None and command.sent_ms is not None and phase[0]:
            samples[phase[0]].append(time.time() * 1000.0 - command.sent_ms)
        return refused

    agent.modes.teleop = timed  # type: ignore[method-assign]  # wraps the real handler to time each command
    errors: list[str] = []
    runner = asyncio.create_task(agent.run())
    browser = threading.Thread(target=drive, args=(url, samples, phase, errors), daemon=True)
    browser.start()
    while browser.is_alive():
        await asyncio.sleep(0.2)
    agent.stop()
    await asyncio.wait_for(runner, timeout=30)
    if errors:
        raise RuntimeError(errors[0])
    return samples


def run() -> dict[str, Any]:
    if not in_namespace():
        code = reexec_isolated("teleop")
        if code:
            raise SystemExit(code)
        return {}
    work = Path(tempfile.mkdtemp(prefix="foreman-bench-teleop-"))
    demo, url, env = start_demo(work, "--robots", "1", "--no-agents")
    try:
        token = subprocess.run([sys.executable, "manage.py", "robot_token", "r1"], cwd=ROOT, env=env, capture_output=True,
                               text=True, check=True).stdout.strip()
        print(f"Chromium drives the robot page: {PRESSES} key presses per transport…", flush=True)
        os.environ.pop("DATABASE_URL", None)
        samples = asyncio.run(measure(url, token, work / "agent"))
    finally:
        stop_demo(demo)
        shutil.rmtree(work, ignore_errors=True)
    channel, websocket = samples["datachannel"], samples["websocket"]
    metrics = {
        "datachannel_p50_ms": percentile(channel, 50), "datachannel_p95_ms": percentile(channel, 95),
        "websocket_p50_ms": percentile(websocket, 50), "websocket_p95_ms": percentile(websocket, 95),
        "datachannel_commands": len(channel), "websocket_commands": len(websocket),
    }
    summary = [f"key → applied: data channel p50 {metrics['datachannel_p50_ms']} ms, p95 {metrics['datachannel_p95_ms']} ms "
               f"({len(channel)} commands); WebSocket p50 {metrics['websocket_p50_ms']} ms, p95 {metrics['websocket_p95_ms']} ms "
               f"({len(websocket)} commands); goal p95 ≤ 10 ms"]
    return finish("teleop", metrics, {"datachannel_p95_ms": "≤ 10"}, summary)
