"""An ALOHA robot (gym-aloha's insertion on MuJoCo) beside a nut-station robot in one fleet, in
Chromium against the demo: both tiles decode live video, and an operator takes the ALOHA robot
over, drives its left gripper up with the keyboard through its declared teleop mapping, and hands
it back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import Demo, logged_in_page, screenshot, start_demo, stop_demo

TILES_DECODE = """(min) => {
  const videos = ['r1', 'aloha1'].map(name => document.querySelector(`.tile[data-robot='${name}'] video`));
  return videos.every(v => v && v.getVideoPlaybackQuality().totalVideoFrames >= min && v.videoWidth > 0);
}"""


@pytest.fixture(scope="module")
def mixed_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    running = start_demo(tmp_path_factory.mktemp("aloha-demo"), "--robots", "1", "--aloha", "1", "--exit-after", "600")
    yield running
    stop_demo(running)


def left_z(page: Any) -> float:
    return page.evaluate("window.foreman.socket.robots.get('aloha1').telemetry.arms.left.z_mm")


def test_an_aloha_robot_beside_a_nut_station_robot_decodes_and_is_driven_and_handed_back(browser: Any, mixed_fleet: Demo) -> None:
    fleet = logged_in_page(browser, mixed_fleet, "supervisor")
    fleet.locator(".tile[data-robot='aloha1']").wait_for()
    fleet.wait_for_function(TILES_DECODE, arg=20, timeout=60_000)
    assert fleet.locator(".tile[data-robot='aloha1'] select").input_value() == "top"  # its own cameras
    # Its own phases (gym-aloha's reward levels), not the nut station's.
    fleet.wait_for_function("['reach', 'grasp', 'lift', 'insert', 'inserted'].includes(window.foreman.socket.robots.get('aloha1')?.telemetry?.phase)",
                            timeout=20_000)
    screenshot(fleet, "fleet-aloha")
    fleet.close()

    page = logged_in_page(browser, mixed_fleet, "operator")
    page.goto(f"{mixed_fleet.url}/robots/aloha1/")
    page.wait_for_function("window.foreman.player && window.foreman.player.state === 'live' && window.foreman.player.frames > 10", timeout=30_000)
    # The teleop panel follows the robot's declaration: the spin key turns the wrist here.
    page.wait_for_function("document.querySelector('#keys-spin-what').textContent === 'turn the wrist'", timeout=10_000)
    # Where the cycle is among its declared phases.
    assert page.locator("#phases li").all_inner_texts() == ["reach", "grasp", "lift", "insert", "inserted"]
    page.wait_for_function("document.querySelectorAll('#phases li[aria-current=step]').length === 1", timeout=10_000)
    page.click("#claim-teleop")
    page.locator("#teleop").wait_for(state="visible")
    assert "gripper in the station's frame" in page.locator("#teleop-space").inner_text()
    page.wait_for_function("document.querySelector('#badge').textContent === 'teleop by operator'", timeout=10_000)
    page.wait_for_function("window.foreman.player.teleop && window.foreman.player.teleop.readyState === 'open'", timeout=10_000)
    page.wait_for_function("window.foreman.socket.robots.get('aloha1').telemetry.mode === 'teleop'", timeout=10_000)

    before = left_z(page)
    page.keyboard.down("r")  # up, at the page's 5 cm/s
    time.sleep(1.5)
    page.keyboard.up("r")
    page.wait_for_function(f"window.foreman.socket.robots.get('aloha1').telemetry.arms.left.z_mm > {before + 25}", timeout=5_000)
    time.sleep(1.0)  # commands and telemetry in flight arrive
    settled = left_z(page)
    time.sleep(1.0)
    assert abs(left_z(page) - settled) < 3, "the gripper must stop when the keys are released"
    screenshot(page, "robot-aloha-teleop")

    page.click("#release")
    page.wait_for_function("document.querySelector('#holder').textContent === 'Nobody holds control.'", timeout=10_000)
    assert "Handed aloha1 back" in page.locator("#message").inner_text()
    page.wait_for_function("!document.querySelector('#badge').textContent.startsWith('teleop')", timeout=10_000)
    page.close()
