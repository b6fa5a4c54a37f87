"""Video and teleop through a TURN relay: Debian's coturn on loopback, the server minting coturn's
short-lived credentials (FOREMAN_TURN_*), and both peers forced to relay-only ICE
(FOREMAN_ICE_TRANSPORT_POLICY=relay: the page's RTCPeerConnection and the agent's aiortc). Then the
relay refuses the credentials (it was restarted with another secret) and the page says so."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import Demo, log_in, screenshot, start_demo, stop_demo
from tests.servers import Coturn

SELECTED_PAIR = """async () => {
  const stats = await window.foreman.player.pc.getStats();
  const byId = new Map([...stats.values()].map((s) => [s.id, s]));
  const transport = [...stats.values()].find((s) => s.type === "transport" && s.selectedCandidatePairId);
  const pair = transport && byId.get(transport.selectedCandidatePairId);
  if (!pair) return null;
  return {local: byId.get(pair.localCandidateId).candidateType, remote: byId.get(pair.remoteCandidateId).candidateType,
          localAddress: byId.get(pair.localCandidateId).address};
}"""


@pytest.fixture
def relayed_demo(tmp_path: Path) -> Iterator[tuple[Demo, Coturn]]:
    coturn = Coturn(secrets.token_hex(16), tmp_path / "coturn.log").start()
    demo = start_demo(tmp_path, "--robots", "1", "--exit-after", "300", env={
        "FOREMAN_TURN_URLS": coturn.url, "FOREMAN_TURN_SECRET": coturn.secret, "FOREMAN_TURN_TTL_S": "600",
        "FOREMAN_ICE_TRANSPORT_POLICY": "relay",
    })
    yield demo, coturn
    stop_demo(demo)
    coturn.stop()


def arm_z(page: Any) -> float:
    return float(page.evaluate("window.foreman.socket.robots.get('r1').telemetry.arms.left.z_mm"))


def test_video_and_teleop_through_a_turn_relay_and_refused_credentials_said_plainly(browser: Any, relayed_demo: tuple[Demo, Coturn]) -> None:
    demo, coturn = relayed_demo
    page = log_in(browser.new_page(viewport={"width": 1280, "height": 900}), demo.url, "operator", "/robots/r1/")
    page.wait_for_function("window.foreman && window.foreman.player && window.foreman.player.state === 'live' && "
                           "window.foreman.player.frames > 30", timeout=45_000)
    assert page.evaluate("window.foreman.socket.iceTransportPolicy") == "relay"
    pair = page.evaluate(SELECTED_PAIR)
    assert pair is not None and pair["local"] == "relay" and pair["remote"] == "relay", pair  # both peers relayed
    log = coturn.log()
    assert "robot:r1" in log and "operator" in log, log[-3000:]  # both peers allocated with their minted identities

    # Teleop over the relayed data channel: the arm moves while the key is held.
    page.locator("#claim-teleop:not([disabled])").click()
    page.wait_for_function("window.foreman.player.teleop && window.foreman.player.teleop.readyState === 'open'", timeout=15_000)
    page.wait_for_function("window.foreman.socket.robots.get('r1')?.telemetry?.mode === 'teleop'", timeout=10_000)
    before = arm_z(page)
    page.keyboard.down("r")
    time.sleep(1.0)
    page.keyboard.up("r")
    page.wait_for_function(f"window.foreman.socket.robots.get('r1').telemetry.arms.left.z_mm > {before + 10}", timeout=5_000)
    page.wait_for_function("document.querySelector('#f-rtt').textContent.includes('data channel')", timeout=10_000)
    screenshot(page, "turn-relayed-teleop")
    page.click("#release")
    page.wait_for_function("document.querySelector('#holder').textContent === 'Nobody holds control.'", timeout=10_000)

    # The relay comes back with another secret: the credentials the server mints are refused (401).
    coturn.stop()
    wrong = Coturn(secrets.token_hex(16), coturn.log_path.with_name("coturn-wrong.log"), port=coturn.port).start()
    try:
        page.reload()
        page.wait_for_function("document.getElementById('overlay').textContent.includes('refused the credentials')", timeout=45_000)
        assert page.locator("#overlay").inner_text() == f"r1: the video relay (TURN {coturn.url}) refused the credentials (wrong or expired)"
        screenshot(page, "turn-credentials-refused")
    finally:
        wrong.stop()
