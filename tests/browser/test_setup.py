"""Fleet setup in Chromium: an admin adds a station and a robot on it from the dashboard, gets the
robot's token once, sees which robot is on which station, is told why a station with a robot cannot
be retired, retires the robot; a supervisor has no such page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import Demo, log_in, screenshot, start_demo, stop_demo


@pytest.fixture
def quiet_demo(tmp_path: Path) -> Iterator[Demo]:
    """A demo of its own (one robot, no agents): this test changes its fleet."""
    running = start_demo(tmp_path, "--robots", "1", "--no-agents", "--exit-after", "300")
    yield running
    stop_demo(running)


def test_an_admin_adds_a_station_and_a_robot_and_retires_them(browser: Any, quiet_demo: Demo) -> None:
    page = log_in(browser.new_page(viewport={"width": 1280, "height": 900}), quiet_demo.url, "admin", "/setup/")
    page.on("dialog", lambda dialog: dialog.accept())  # the confirmations before a rotation or retirement
    page.wait_for_selector("[data-station='nut-1'] [data-robot='r1']")

    page.select_option("#add-station select[name=line]", label="Die-casting workshop / Line 1")
    page.fill("#add-station input[name=name]", "press-3")
    page.fill("#add-station input[name=task]", "press-fit bearings")
    page.fill("#add-station input[name=takt_s]", "40")
    page.click("#add-station button[type=submit]")
    page.wait_for_selector("[data-station='press-3']")

    page.fill("#add-robot input[name=name]", "arm9")
    page.select_option("#add-robot select[name=station]", "press-3")
    page.click("#add-robot button[type=submit]")
    page.wait_for_selector("[data-station='press-3'] [data-robot='arm9']")
    token_box = page.locator("#token-box")
    assert token_box.is_visible()
    command = page.locator("#token-command").inner_text()
    token = command.split("--token ", 1)[1].split()[0]
    assert token.startswith("frt_") and "--name arm9" in command
    row = page.locator("[data-robot='arm9']").inner_text()
    assert f"token {token[:8]}…" in row and token not in row  # the list shows a prefix only
    assert "arm9" in quiet_demo.manage("fleet", "list").split("press-3", 1)[1]
    screenshot(page, "setup")
    page.click("#token-done")
    assert not token_box.is_visible()

    page.click("[data-station='press-3'] button:has-text('Retire station')")
    page.wait_for_function("() => document.querySelector('#status').textContent.includes('move or retire arm9 first')")
    assert page.locator("#status").get_attribute("data-bad") == "1"

    page.click("[data-robot='arm9'] button:has-text('Retire')")
    page.wait_for_function("() => !document.querySelector(\"[data-robot='arm9']\")")
    page.click("[data-station='press-3'] button:has-text('Retire station')")
    page.wait_for_function("() => !document.querySelector(\"[data-station='press-3']\")")
    audit = quiet_demo.manage("shell", "-c", "from webapp.fleet.models import AuditEvent as A; "
                              "print(list(A.objects.filter(actor='admin').order_by('at').values_list('action', flat=True)))")
    for action in ("station_created", "robot_created", "robot_token_issued", "robot_retired", "station_retired"):
        assert action in audit, (action, audit)
    page.close()

    supervisor = log_in(browser.new_page(), quiet_demo.url, "supervisor", "/")
    assert supervisor.locator("nav a:has-text('Setup')").count() == 0
    response = supervisor.goto(f"{quiet_demo.url}/setup/")
    assert response is not None and response.status == 403
    supervisor.close()
