"""The policies page in Chromium: a supervisor sends a new policy to a canary robot, watches it go
live on the real simulated robot, promotes it to the station and rolls it back."""

from __future__ import annotations

import re

from tests.browser.conftest import logged_in_page, screenshot

REGISTER = """
from pathlib import Path
from webapp.learning.services.policies import policy_register
weights = Path("robot_agent/weights/bc-sim-v1.pt")
policy_register(name="bc-sim-v1", checkpoint=weights, evaluation={"success_rate": 0.91, "mean_cycle_s": 55.4,
                "failure_modes": {"takt_overrun": 18}}, replace=True)
policy_register(name="bc-sim-v2", checkpoint=weights, parent="bc-sim-v1", evaluation={"success_rate": 0.95,
                "mean_cycle_s": 54.9, "failure_modes": {"takt_overrun": 7, "missed_pick": 3}}, replace=True)
"""


def test_canary_promote_and_rollback_from_the_policies_page(browser, demo):
    demo.manage("shell", "-c", REGISTER)
    page = logged_in_page(browser, demo, "supervisor")
    page.click("nav >> text=Policies")
    row = page.locator("tr[data-policy='bc-sim-v2']")
    row.wait_for()
    assert "95.0%" in row.inner_text() and "bc-sim-v1" in row.inner_text()
    page.wait_for_function("document.querySelector(\"tr[data-policy='bc-sim-v1'] td:nth-child(6)\").textContent.includes('r1')",
                           timeout=30_000)  # both robots report the shipped policy

    row.locator("select").select_option("r1")
    row.locator("button", has_text="Start canary").click()
    canary = page.locator("tr[data-rollout]").first
    # Downloaded and verified ("loaded"), live from the robot's next cycle. Nobody answers the demo
    # robots' interventions here, so a robot in hold may never start that cycle: loaded counts too.
    canary.locator(".chip.live, .chip.loaded", has_text="r1").wait_for(timeout=45_000)
    assert "canary" in canary.inner_text() and "r2" not in canary.inner_text()
    screenshot(page, "policies-canary")

    canary.locator("button", has_text="Promote to station").click()
    canary.locator(".chip.live, .chip.loaded", has_text="r2").wait_for(timeout=45_000)
    assert re.search(r"\bfleet\b", canary.inner_text())

    page.once("dialog", lambda dialog: dialog.accept())
    canary.locator("button", has_text="Roll back").click()
    page.wait_for_function(
        "(() => { const row = document.querySelector('tr[data-rollout]');"
        " const chips = [...row.querySelectorAll('.chip.live, .chip.loaded')];"
        " return row.textContent.includes('rolled back') && chips.length === 2 && chips.every(c => c.textContent.includes('↩')); })()",
        timeout=45_000)
    screenshot(page, "policies-rolled-back")
    page.close()


def test_operators_see_policies_without_rollout_buttons(browser, demo):
    page = logged_in_page(browser, demo, "operator")
    page.goto(f"{demo.url}/policies/")
    page.locator("#versions").wait_for()
    assert page.locator("button", has_text="Start canary").count() == 0
    page.close()
