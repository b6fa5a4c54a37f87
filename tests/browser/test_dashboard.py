"""The supervisor dashboard in Chromium against the demo (real daphne, real simulated robots,
real WebRTC video): tiles decode video, a robot's alert appears and is acknowledged with one key,
an operator takes control and drives with the keyboard, hands back, a second claim is refused
with the holder's name, e-stop latches until a supervisor clears it, KPIs and audit render."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import ROOT, Demo, logged_in_page, screenshot

FRAMES_DECODED = """(min) => {
  const videos = [...document.querySelectorAll('.tile video')];
  return videos.length >= 2 && videos.every(v => v.getVideoPlaybackQuality().totalVideoFrames >= min && v.videoWidth > 0);
}"""

NEEDY_ROBOT = """
from webapp.fleet.models import Robot, Station
from webapp.fleet.services.robots import robot_issue_token
Robot.objects.get_or_create(name="r9", defaults={"station": Station.objects.get(name="nut-1"), "cameras": ["head", "wrist_left", "wrist_right"]})
print(robot_issue_token(robot_name="r9", actor="test"))
"""


class NeedyRobot:
    """A third simulated robot, r9, whose takt trigger fires 1.5 s into each cycle: a sure intervention."""

    def __init__(self, demo: Demo, state: Path) -> None:
        self.demo, self.state = demo, state
        self.token = demo.manage("shell", "-c", NEEDY_ROBOT).strip().splitlines()[-1]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "robot_agent", "--server", self.demo.url, "--token", self.token, "--sim", "--name", "r9",
             "--ice-loopback", "--time-scale", "1", "--takt-warning-fraction", "0.02", "--state-dir", str(self.state)],
            cwd=ROOT, env=self.demo.env, stdout=open(self.state / "agent.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )

    def ensure_running(self) -> None:
        if self.process is None or self.process.poll() is not None:
            self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)


@pytest.fixture(scope="module")
def needy_robot(demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NeedyRobot]:
    robot = NeedyRobot(demo, tmp_path_factory.mktemp("r9"))
    robot.start()
    yield robot
    robot.stop()


def test_fleet_tiles_decode_live_video(browser: Any, demo: Demo) -> None:
    page = logged_in_page(browser, demo, "supervisor")
    page.locator(".tile[data-robot='r1']").wait_for()
    page.wait_for_function(FRAMES_DECODED, arg=30, timeout=30_000)
    counts = page.evaluate("[...document.querySelectorAll('.tile video')].map(v => v.getVideoPlaybackQuality().totalVideoFrames)")
    time.sleep(1.0)
    later = page.evaluate("[...document.querySelectorAll('.tile video')].map(v => v.getVideoPlaybackQuality().totalVideoFrames)")
    assert all(b > a for a, b in zip(counts, later, strict=True)), (counts, later)  # still decoding, not a frozen first frame
    assert page.locator(".tile[data-robot='r1'] .badge").inner_text() in {"autonomous", "warning", "needs help", "paused"}
    assert page.locator("#connection").inner_text() == "Live"
    screenshot(page, "fleet")
    page.close()


def test_a_robots_alert_appears_is_acknowledged_with_one_key_and_offline_is_unmistakable(
    browser: Any, demo: Demo, needy_robot: NeedyRobot
) -> None:
    page = logged_in_page(browser, demo, "supervisor")
    alert = page.locator("#alert-list li.alert[data-robot='r9']").first
    alert.wait_for(timeout=30_000)
    assert "takt overrun" in alert.inner_text()
    assert page.locator(".tile[data-robot='r9']").get_attribute("data-status") == "help"
    assert page.title().startswith("(")  # the unacknowledged count in the tab title
    screenshot(page, "fleet-alert")
    page.keyboard.press("a")
    page.locator("#alert-list li.alert.acknowledged[data-robot='r9']").wait_for(timeout=10_000)
    assert "seen by supervisor" in page.locator("#alert-list li.alert[data-robot='r9']").first.inner_text()

    needy_robot.stop()  # the robot's agent goes away
    page.wait_for_function("document.querySelector(\".tile[data-robot='r9']\").dataset.status === 'offline'", timeout=15_000)
    assert page.locator(".tile[data-robot='r9'] .badge").inner_text() == "offline"
    assert page.locator(".tile[data-robot='r9'] .overlay").inner_text() == "offline"
    screenshot(page, "fleet-offline")

    needy_robot.start()  # it comes back: the tile's video reconnects by itself
    page.wait_for_function("document.querySelector(\".tile[data-robot='r9']\").dataset.status !== 'offline'", timeout=30_000)
    frames = page.evaluate("document.querySelector(\".tile[data-robot='r9'] video\").getVideoPlaybackQuality().totalVideoFrames")
    page.wait_for_function(
        f"document.querySelector(\".tile[data-robot='r9'] video\").getVideoPlaybackQuality().totalVideoFrames > {frames + 20}", timeout=30_000)
    page.close()


def test_the_page_reconnects_and_says_so_meanwhile(browser: Any, demo: Demo) -> None:
    page = logged_in_page(browser, demo, "supervisor")
    page.locator(".tile[data-robot='r1']").wait_for()
    page.wait_for_function("document.querySelector('#connection').dataset.state === 'open'")
    # From now on the page's WebSockets go through this handler: refused while `blocked`.
    blocked = {"on": True}

    def gate(ws: Any) -> None:
        if blocked["on"]:
            ws.close(code=4000, reason="test: server unreachable")
        else:
            ws.connect_to_server()

    page.route_web_socket("**/ws/fleet/", gate)
    page.evaluate("window.foreman.socket.ws.close()")
    page.wait_for_function("document.querySelector('#connection').dataset.state === 'reconnecting'", timeout=5_000)
    assert "reconnecting" in page.locator("#connection").inner_text()
    # Nothing is shown as fine while the page cannot see the fleet.
    assert page.locator(".tile[data-status='autonomous']").count() == 0
    assert page.locator(".tile[data-robot='r1'] .badge").inner_text() == "no connection to server"
    screenshot(page, "fleet-reconnecting")
    blocked["on"] = False
    page.wait_for_function("document.querySelector('#connection').dataset.state === 'open'", timeout=20_000)
    page.wait_for_function("document.querySelector(\".tile[data-robot='r1']\").dataset.status !== 'unknown'", timeout=10_000)
    page.close()


def left_arm_z(page: Any) -> float:
    return page.evaluate("window.foreman.socket.robots.get('r9').telemetry.arms.left.z_mm")


def test_operator_takes_control_drives_with_keys_and_hands_back(browser: Any, demo: Demo, needy_robot: NeedyRobot) -> None:
    # r9 holds 1.5 s into each cycle, arms still free near the feeder (a nut being threaded would
    # pin the arm to its hole): the situation a teleoperator is called for.
    needy_robot.ensure_running()
    page = logged_in_page(browser, demo, "operator")
    page.goto(f"{demo.url}/robots/r9/")
    page.wait_for_function("window.foreman.player && window.foreman.player.state === 'live' && window.foreman.player.frames > 10", timeout=30_000)
    page.wait_for_function("/L pick/.test(window.foreman.socket.robots.get('r9')?.telemetry?.phase || '')", timeout=30_000)
    page.click("#claim-teleop")
    page.locator("#teleop").wait_for(state="visible")
    assert page.locator("#holder").inner_text() == "You hold control (teleop)."
    page.wait_for_function("document.querySelector('#badge').textContent === 'teleop by operator'", timeout=10_000)
    page.wait_for_function("window.foreman.player.teleop && window.foreman.player.teleop.readyState === 'open'", timeout=10_000)

    before = left_arm_z(page)
    page.keyboard.down("r")  # up
    time.sleep(1.0)
    page.keyboard.up("r")
    page.wait_for_function(f"window.foreman.socket.robots.get('r9').telemetry.arms.left.z_mm > {before + 20}", timeout=5_000)
    time.sleep(1.0)  # commands and telemetry in flight (10 Hz telemetry, 100 ms batches) arrive
    settled = left_arm_z(page)
    time.sleep(1.0)
    assert abs(left_arm_z(page) - settled) < 2, "the arm must stop when the keys are released"
    page.wait_for_function("document.querySelector('#f-rtt').textContent.includes('to the robot')", timeout=5_000)
    assert "data channel" in page.locator("#f-rtt").inner_text()
    screenshot(page, "robot-teleop")

    page.click("#release")
    page.wait_for_function("document.querySelector('#holder').textContent === 'Nobody holds control.'", timeout=10_000)
    assert "Handed r9 back" in page.locator("#message").inner_text()
    page.wait_for_function("!document.querySelector('#badge').textContent.startsWith('teleop')", timeout=10_000)
    page.close()


def test_estop_while_driving_ends_control_and_held_keys_never_move_the_robot_again(
    browser: Any, demo: Demo, needy_robot: NeedyRobot
) -> None:
    needy_robot.ensure_running()
    page = logged_in_page(browser, demo, "admin")  # may drive and clear an e-stop: one person does both here
    page.goto(f"{demo.url}/robots/r9/")
    page.wait_for_function("/L pick/.test(window.foreman.socket.robots.get('r9')?.telemetry?.phase || '')", timeout=30_000)
    page.locator("#claim-teleop:not([disabled])").click()
    page.wait_for_function("document.querySelector('#badge').textContent === 'teleop by admin'", timeout=10_000)
    before = left_arm_z(page)
    page.keyboard.down("r")  # driving up ...
    page.wait_for_function(f"window.foreman.socket.robots.get('r9').telemetry.arms.left.z_mm > {before + 5}", timeout=5_000)
    page.keyboard.press("Escape")  # ... and the e-stop, with the key still held
    page.wait_for_function("document.querySelector('#badge').textContent === 'e-stopped'", timeout=10_000)
    assert "Control lost to the e-stop" in page.locator("#message").inner_text()
    assert page.locator("#holder").inner_text() == "Nobody holds control."
    assert not page.locator("#teleop").is_visible()
    screenshot(page, "robot-estop-lost-control")

    page.check("#clear-confirm")
    page.click("#clear-estop")
    page.wait_for_function("window.foreman.socket.robots.get('r9').telemetry?.mode === 'hold'", timeout=10_000)
    time.sleep(0.5)  # telemetry in flight settles
    held_at = left_arm_z(page)
    for _ in range(15):  # the key is still down, and repeats: nothing may reach the arm
        page.keyboard.down("r")
        time.sleep(0.1)
    page.keyboard.up("r")
    time.sleep(0.5)
    assert abs(left_arm_z(page) - held_at) < 1.0, "a cleared e-stop must not hand the robot back to the keys"
    assert page.evaluate("window.foreman.socket.robots.get('r9').telemetry.mode") == "hold"
    assert page.evaluate("window.foreman.lease") is None

    # Driving again takes a new claim; bring the arm back down and hand r9 back for the tests after this one.
    page.locator("#claim-teleop:not([disabled])").click()
    page.wait_for_function("document.querySelector('#badge').textContent === 'teleop by admin'", timeout=10_000)
    page.keyboard.down("f")
    page.wait_for_function(f"window.foreman.socket.robots.get('r9').telemetry.arms.left.z_mm < {before + 2}", timeout=10_000)
    page.keyboard.up("f")
    page.click("#release")
    page.wait_for_function("document.querySelector('#holder').textContent === 'Nobody holds control.'", timeout=10_000)
    page.close()


def test_a_second_claim_is_refused_with_the_holders_name(browser: Any, demo: Demo) -> None:
    operator = logged_in_page(browser, demo, "operator")
    operator.goto(f"{demo.url}/robots/r2/")
    operator.locator("#claim-teleop:not([disabled])").wait_for(timeout=15_000)
    operator.click("#claim-teleop")
    operator.locator("#teleop").wait_for(state="visible")

    admin = logged_in_page(browser, demo, "admin")
    admin.goto(f"{demo.url}/robots/r2/")
    admin.wait_for_function("document.querySelector('#holder').textContent.includes('operator holds control')", timeout=10_000)
    assert admin.locator("#takeover").is_visible()  # admins may take over; here they only claim
    admin.click("#claim-teleop")
    admin.wait_for_function("document.querySelector('#message').textContent.includes('operator holds control of r2')", timeout=10_000)
    assert "error" in (admin.locator("#message").get_attribute("class") or "")
    assert operator.locator("#holder").inner_text() == "You hold control (teleop)."
    screenshot(admin, "robot-claim-refused")
    operator.click("#release")
    operator.wait_for_function("document.querySelector('#holder').textContent === 'Nobody holds control.'", timeout=10_000)
    operator.close()
    admin.close()


def test_estop_latches_until_a_supervisor_clears_it(browser: Any, demo: Demo) -> None:
    operator = logged_in_page(browser, demo, "operator")
    operator.goto(f"{demo.url}/robots/r2/")
    operator.locator("#badge:not(.unknown)").wait_for(timeout=10_000)
    operator.keyboard.press("Escape")
    operator.wait_for_function("document.querySelector('#badge').textContent === 'e-stopped'", timeout=10_000)
    assert operator.locator("#estop-latched").is_visible()
    assert not operator.locator("#clear-box").is_visible()  # operators may not clear an e-stop
    assert operator.locator("#claim-teleop").is_disabled()
    screenshot(operator, "robot-estopped")

    supervisor = logged_in_page(browser, demo, "supervisor")
    supervisor.goto(f"{demo.url}/robots/r2/")
    supervisor.locator("#clear-box").wait_for(state="visible", timeout=10_000)
    assert supervisor.locator("#clear-estop").is_disabled()  # not before the station has been checked
    supervisor.check("#clear-confirm")
    supervisor.click("#clear-estop")
    operator.wait_for_function("document.querySelector('#badge').textContent !== 'e-stopped'", timeout=10_000)
    supervisor.click("#resume")
    # Resumed, the robot drives again — or, when its part ran out of takt while it stood e-stopped
    # (the demo's robots run through the whole session), it asks for help at once: both are a resume.
    try:
        operator.wait_for_function("""() => {
            const badge = document.querySelector('#badge').textContent;
            return ['autonomous', 'warning'].includes(badge)
                || (badge === 'needs help' && document.body.innerText.includes('takt overrun'));
        }""", timeout=15_000)
    except Exception as error:  # say what the page showed instead
        raise AssertionError(f"after resume the badge says {operator.locator('#badge').inner_text()!r}; "
                             f"the page: {operator.locator('main').inner_text()[:1500]!r}") from error
    operator.close()
    supervisor.close()


REPORTING_ROBOT = """
from webapp.fleet.models import Robot, Station
from webapp.fleet.services.robots import robot_issue_token
Robot.objects.get_or_create(name="r7", defaults={"station": Station.objects.get(name="nut-1"), "cameras": []})
print(robot_issue_token(robot_name="r7", actor="test"))
"""


def test_a_robots_fault_shows_on_its_tile_and_robot_page_at_once(browser: Any, demo: Demo) -> None:
    """A robot that speaks the protocol from this test (no agent): its fault reaches the pages at once."""
    from websockets.sync.client import connect

    token = demo.manage("shell", "-c", REPORTING_ROBOT).strip().splitlines()[-1]
    page = logged_in_page(browser, demo, "supervisor")
    ws_url = demo.url.replace("http://", "ws://") + "/ws/robot/"
    with connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"}, proxy=None, open_timeout=10) as robot:
        robot.send(json.dumps({"type": "hello", "protocol": 1, "agent_version": "test", "cameras": [], "mode": "autonomous",
                               "estopped": False}))
        assert json.loads(robot.recv(timeout=10))["type"] == "welcome"
        page.locator(".tile[data-robot='r7']").wait_for(timeout=10_000)
        robot.send(json.dumps({"type": "fault", "code": "torque_out_of_range", "detail": "9.4 N·m > 9.0"}))
        fault = page.locator(".tile[data-robot='r7'] .fault")
        fault.wait_for(state="visible", timeout=5_000)
        assert "torque_out_of_range" in fault.inner_text() and "9.4 N·m" in fault.inner_text()
        screenshot(page, "fleet-fault")
        page.goto(f"{demo.url}/robots/r7/")
        page.wait_for_function("window.foreman.socket.state === 'open'", timeout=10_000)
        assert page.locator("#f-fault").inner_text() == "none"  # a page opened after the fault has no history of it
        robot.send(json.dumps({"type": "fault", "code": "nut_missing", "detail": "no nut at the feeder"}))
        page.wait_for_function("document.querySelector('#f-fault').textContent.startsWith('nut_missing')", timeout=5_000)
        assert "bad" in (page.locator("#f-fault").get_attribute("class") or "")
    page.close()


def test_kpis_render_charts_from_the_demos_cycles(browser: Any, demo: Demo) -> None:
    page = logged_in_page(browser, demo, "supervisor")
    deadline = time.monotonic() + 90
    while True:  # the demo's robots finish their first cycles a few seconds of wall time in
        page.goto(f"{demo.url}/kpis/?hours=1")
        page.wait_for_selector("body[data-loaded='true']", timeout=15_000)
        cycles = page.evaluate("Number((document.querySelector(\"[data-kpi='Success rate'] .note\").textContent.match(/of (\\d+) cycles/) || [0, 0])[1])")
        if cycles > 0 or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert cycles > 0
    assert page.locator(".uplot").count() == 3
    drawn = page.evaluate("""[...document.querySelectorAll('.uplot canvas')].map(c => {
        const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let ink = 0; for (let i = 3; i < data.length; i += 4) if (data[i] > 0) ink++;
        return ink; })""")
    assert all(ink > 500 for ink in drawn), drawn
    assert page.locator("#by-robot tbody tr").count() >= 1
    screenshot(page, "kpis")
    page.close()


def test_audit_page_filters_by_robot_and_action(browser: Any, demo: Demo) -> None:
    page = logged_in_page(browser, demo, "supervisor")
    page.goto(f"{demo.url}/audit/?robot=r2&action=estop")
    page.locator("#audit tbody tr[data-action='estop']").first.wait_for(timeout=10_000)
    rows = page.locator("#audit tbody tr")
    assert all(rows.nth(i).get_attribute("data-action") == "estop" for i in range(rows.count()))
    assert any("operator" in rows.nth(i).inner_text() for i in range(rows.count()))
    screenshot(page, "audit")
    page.close()
    operator = logged_in_page(browser, demo, "operator")
    response = operator.goto(f"{demo.url}/audit/")
    assert response is not None and response.status == 403
    operator.close()


def test_above_the_latency_threshold_driving_stops_and_the_robot_holds(browser: Any, demo: Demo) -> None:
    # A stricter threshold than any real link meets (1 ms) stands in for a slow network.
    page = logged_in_page(browser, demo, "operator")
    page.goto(f"{demo.url}/robots/r1/?max_latency_ms=1")
    page.locator("#claim-teleop:not([disabled])").wait_for(timeout=15_000)
    page.wait_for_function("window.foreman.player && window.foreman.player.state === 'live'", timeout=30_000)
    page.click("#claim-teleop")
    page.locator("#latency-warning").wait_for(state="visible", timeout=10_000)
    assert "Direct driving is off" in page.locator("#latency-warning").inner_text()
    # No motion commands leave the page, so the agent's deadman holds the robot.
    page.wait_for_function("(window.foreman.socket.robots.get('r1').telemetry?.warning || '').startsWith('deadman')", timeout=10_000)
    screenshot(page, "robot-supervisory")
    page.click("#release")
    page.wait_for_function("document.querySelector('#holder').textContent === 'Nobody holds control.'", timeout=10_000)
    page.close()


MORE_ROBOTS = """
from webapp.fleet.models import Line, Robot, Station
station, _ = Station.objects.get_or_create(name="nut-2", defaults={"line": Line.objects.first(), "takt_s": 76.0})
for i in range(10, 26):
    Robot.objects.get_or_create(name=f"r{i}", defaults={"station": station, "cameras": ["head", "wrist_left", "wrist_right"]})
"""


def test_a_large_fleet_pauses_the_video_of_tiles_out_of_view(browser: Any, demo: Demo) -> None:
    demo.manage("shell", "-c", MORE_ROBOTS)  # 16 more robots (no agents: offline) on a second station
    page = logged_in_page(browser, demo, "supervisor")
    page.locator(".tile[data-robot='r25']").wait_for()
    assert page.locator(".tile").count() >= 18
    assert page.locator(".tile[data-robot='r25'] .badge").inner_text() == "offline"
    page.wait_for_function("['r1', 'r2'].every(n => document.querySelector(`.tile[data-robot='${n}'] video`).getVideoPlaybackQuality().totalVideoFrames > 10)",
                           timeout=30_000)
    page.locator(".tile[data-robot='r25']").scroll_into_view_if_needed()  # r1 and r2 leave the screen
    page.wait_for_function("!window.foreman.tiles.get('r1').player && !window.foreman.tiles.get('r2').player", timeout=10_000)
    assert page.locator(".tile[data-robot='r1'] .overlay").inner_text() == "paused (off screen)"
    screenshot(page, "fleet-large")
    page.locator(".tile[data-robot='r1']").scroll_into_view_if_needed()
    page.wait_for_function("window.foreman.tiles.get('r1').player && window.foreman.tiles.get('r1').player.state === 'live'", timeout=20_000)
    page.close()


FAKE_GAMEPAD = """
// A test stand-in for a USB gamepad (standard mapping): the page reads it like a real one.
window.__pad = {id: "Test pad (standard)", connected: true, index: 0, mapping: "standard",
  axes: [0, 0, 0, 0], buttons: Array.from({length: 16}, () => ({pressed: false, touched: false, value: 0}))};
navigator.getGamepads = () => [window.__pad];
"""


def test_gamepad_and_shared_autonomy(browser: Any, demo: Demo, needy_robot: NeedyRobot) -> None:
    needy_robot.ensure_running()
    page = logged_in_page(browser, demo, "operator")
    page.add_init_script(FAKE_GAMEPAD)
    page.goto(f"{demo.url}/robots/r9/")
    page.wait_for_function("window.foreman.player && window.foreman.player.state === 'live'", timeout=30_000)
    # The left arm must be free to move (a nut being threaded pins it to its hole; earlier tests
    # may have left r9 anywhere in its cycle).
    page.wait_for_function("/L pick/.test(window.foreman.socket.robots.get('r9')?.telemetry?.phase || '')", timeout=30_000)
    page.locator("#claim-teleop:not([disabled])").click()
    page.locator("#teleop").wait_for(state="visible")
    page.wait_for_function("document.querySelector('#badge').textContent === 'teleop by operator'", timeout=10_000)
    page.wait_for_function("document.querySelector('#gamepad').textContent.includes('Test pad')")
    before = left_arm_z(page)
    page.evaluate("window.__pad.axes[3] = -1")  # right stick up
    page.wait_for_function(f"window.foreman.socket.robots.get('r9').telemetry.arms.left.z_mm > {before + 20}", timeout=10_000)
    # And back down near where it was: the policy, sharing control next, knows that part of the space
    # (an arm left far above it makes the policy unsure, and the robot holds).
    page.evaluate("window.__pad.axes[3] = 1")
    page.wait_for_function(f"window.foreman.socket.robots.get('r9').telemetry.arms.left.z_mm < {before + 5}", timeout=10_000)
    page.evaluate("window.__pad.axes[3] = 0")
    page.click("#release")
    page.wait_for_function("document.querySelector('#holder').textContent === 'Nobody holds control.'", timeout=10_000)

    page.locator("#claim-shared:not([disabled])").click()
    page.wait_for_function("document.querySelector('#badge').textContent === 'shared by operator'", timeout=10_000)
    assert "shared autonomy" in page.locator("#drive-mode").inner_text()
    page.wait_for_function("window.foreman.socket.robots.get('r9').telemetry?.mode === 'shared'", timeout=10_000)
    page.keyboard.down("r")  # a nudge on top of the policy's own motion
    time.sleep(0.6)
    page.keyboard.up("r")
    assert not (page.evaluate("window.foreman.socket.robots.get('r9').telemetry.warning") or "").startswith("deadman")
    screenshot(page, "robot-shared")
    page.click("#release")
    page.wait_for_function("document.querySelector('#holder').textContent === 'Nobody holds control.'", timeout=10_000)
    page.close()


def test_the_robot_page_shows_every_camera_and_switches_without_renegotiating(browser: Any, demo: Demo) -> None:
    """A teleoperator needs both wrists while driving: every camera arrives at once (one track each),
    the chosen one big at full size, the others as thumbnails; choosing a thumbnail swaps them on the
    same peer connection (the robot resizes the tracks: video_layout)."""
    page = logged_in_page(browser, demo, "operator")
    page.goto(f"{demo.url}/robots/r1/")
    page.wait_for_function("window.foreman.player && window.foreman.player.state === 'live' && window.foreman.player.streams.size === 3",
                           timeout=30_000)
    page.wait_for_function("[...document.querySelectorAll('#thumbs video')].length === 2 && [...document.querySelectorAll('#thumbs video')]"
                           ".every(v => v.getVideoPlaybackQuality().totalVideoFrames > 5 && v.videoWidth === 320)", timeout=20_000)
    peer = page.evaluate("window.foreman.player.peer")
    page.wait_for_function("document.getElementById('video').videoWidth === 640", timeout=10_000)
    screenshot(page, "robot-every-camera")
    page.click("#thumbs button[title='show wrist left']")
    page.wait_for_function("window.foreman.player.camera === 'wrist_left' && document.getElementById('video').videoWidth === 640 && "
                           "document.querySelector('#thumbs video[data-camera=head]')?.videoWidth === 320", timeout=15_000)
    assert page.evaluate("window.foreman.player.peer") == peer  # the same connection: no renegotiation
    frames = page.evaluate("document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames")
    page.wait_for_function(f"document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames > {frames + 10}", timeout=10_000)
    page.click("#thumbs button[title='show head']")  # leave it as the other tests expect
    page.wait_for_function("window.foreman.player.camera === 'head'", timeout=10_000)
    page.close()
