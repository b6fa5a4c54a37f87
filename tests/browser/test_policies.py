"""The policies page in Chromium: a supervisor sends a new policy to a canary robot, watches it go
live on the real simulated robot, promotes it to the station and rolls it back."""

from __future__ import annotations

import re

from tests.browser.conftest import logged_in_page, screenshot

REGISTER = """
from pathlib import Path
from webapp.learning.services.policies import policy_register
weights = Path("foreman_learning/weights/bc-sim-v2.pt")
policy_register(name="bc-sim-v2", checkpoint=weights, evaluation={"success_rate": 0.91, "mean_cycle_s": 55.4,
                "failure_modes": {"takt_overrun": 18}}, replace=True)
policy_register(name="bc-sim-v3", checkpoint=weights, parent="bc-sim-v2", evaluation={"success_rate": 0.95,
                "mean_cycle_s": 54.9, "failure_modes": {"takt_overrun": 7, "missed_pick": 3}}, replace=True)
"""


def test_canary_promote_and_rollback_from_the_policies_page(browser, demo):
    demo.manage("shell", "-c", REGISTER)
    page = logged_in_page(browser, demo, "supervisor")
    page.click("nav >> text=Policies")
    row = page.locator("tr[data-policy='bc-sim-v3']")
    row.wait_for()
    assert "95.0%" in row.inner_text() and "bc-sim-v2" in row.inner_text()
    page.wait_for_function("document.querySelector(\"tr[data-policy='bc-sim-v2'] td:nth-child(6)\").textContent.includes('r1')",
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


ROUNDS = """
import uuid
from datetime import timedelta
from django.contrib.auth import get_user_model
from django.utils import timezone
from webapp.fleet.models import Episode, Robot
from webapp.labeling.models import Export
from webapp.learning.models import RetrainingRound
from webapp.learning.services.policies import policy_register
from pathlib import Path
robot = Robot.objects.get(name="r1")
admin = get_user_model().objects.get(username="admin")
now = timezone.now()
ids = []
for index in range(3):
    episode = Episode.objects.create(id=uuid.uuid4(), robot=robot, station=robot.station, policy_version="bc-sim-v2", cycle_index=900 + index,
                                     seed=5000 + index, started_at=now - timedelta(minutes=5), ended_at=now, duration_s=60.0,
                                     outcome="failure", failure_mode="dropped_nut", intervened=True)
    ids.append(str(episode.id))
# A finished export whose zip is not on disk: a round started on it fails, and says why.
Export.objects.create(created_by=get_user_model().objects.get(username="labeler"), format="lerobot_v3", episodes=ids, state="done",
                      progress=1.0, file="exports/missing.zip", finished_at=now)
result = policy_register(name="bc-sim-v2-r1", checkpoint=Path("foreman_learning/weights/bc-sim-v2.pt"), parent="bc-sim-v2",
                         evaluation={"success_rate": 0.93, "mean_cycle_s": 54.1, "failure_modes": {"dropped_nut": 4}}, replace=True)
RetrainingRound.objects.create(base_policy="bc-sim-v2", episode_ids=ids, state="done", progress=1.0, stage="done", result=result,
                               report={"success_before": 0.91, "success_after": 0.93, "cycle_s_before": 55.2, "cycle_s_after": 54.1,
                                       "success_control": 0.92},
                               created_by=admin, finished_at=now)
RetrainingRound.objects.create(base_policy="bc-sim-v2", episode_ids=ids, state="running", progress=0.4, stage="fine-tuning: pass 2 of 4",
                               created_by=admin)
"""


def test_retraining_rounds_are_started_and_watched_from_the_policies_page(browser, demo):
    demo.manage("shell", "-c", REGISTER)
    demo.manage("shell", "-c", ROUNDS)
    page = logged_in_page(browser, demo, "supervisor")
    page.goto(f"{demo.url}/policies/")
    rounds = page.locator("#rounds tbody")
    rounds.locator("tr", has_text="bc-sim-v2-r1").wait_for()
    done = rounds.locator("tr", has_text="bc-sim-v2-r1").inner_text()
    assert "91.0%" in done and "93.0%" in done and "55.2 → 54.1 s" in done
    assert "control, without the episodes" in done and "92.0%" in done
    running = rounds.locator("tr", has_text="fine-tuning")
    assert "40% fine-tuning: pass 2 of 4" in running.inner_text()
    assert running.locator("progress").get_attribute("value") == "40"
    assert "3 episodes" in page.locator("#retrain-form select option").first.inner_text()
    screenshot(page, "policies-retraining")

    page.fill("#retrain-form input[name=epochs]", "1")
    page.click("#retrain-form button")
    # The demo runs tasks inline: the round on an export whose files are gone fails at once, with its reason.
    page.locator("#rounds tr .round-state.failed").wait_for(timeout=30_000)
    assert "failed:" in page.locator("#rounds tr .round-state.failed").first.inner_text()
    page.close()
    operator = logged_in_page(browser, demo, "operator")
    operator.goto(f"{demo.url}/policies/")
    operator.locator("#rounds tbody tr", has_text="bc-sim-v2-r1").wait_for()
    assert operator.locator("#retrain-form").count() == 0
    operator.close()
