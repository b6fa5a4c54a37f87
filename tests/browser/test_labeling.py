"""The labeling loop in Chromium: a robot uploads a failed, taken-over episode (recorded by the
agent's own recorder, sent to the demo's upload endpoint, processed there); a labeler finds it in
the queue, reads the timeline, labels it with the keyboard; a second reviewer confirms."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import httpx

from tests.browser.conftest import Demo, logged_in_page, screenshot
from tests.labeling.recordings import record_episode

UPLOADER = """
from webapp.fleet.models import Robot, Station
from webapp.fleet.services.robots import robot_issue_token
Robot.objects.get_or_create(name="r8", defaults={"station": Station.objects.get(name="nut-1"), "cameras": ["head", "wrist_left"]})
print(robot_issue_token(robot_name="r8", actor="test"))
"""


def upload(demo: Demo, token: str, spool: Path) -> dict[str, Any]:
    metadata = (spool / "metadata.json").read_text()
    files = {"steps": ("steps.parquet", (spool / "steps.parquet").read_bytes())}
    for camera in json.loads(metadata)["cameras"]:
        files[f"video_{camera}"] = (f"{camera}.mp4", (spool / f"video_{camera}.mp4").read_bytes())
    episode = json.loads(metadata)["episode"]
    response = httpx.post(f"{demo.url}/api/robot/episodes/{episode}/upload", data={"metadata": metadata}, files=files,
                          headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_labeler_labels_an_uploaded_failure_and_a_second_reviewer_confirms(browser: Any, demo: Demo, tmp_path: Path) -> None:
    token = demo.manage("shell", "-c", UPLOADER).strip().splitlines()[-1]
    spool = record_episode(tmp_path / "agent", seconds=8.0, takeover_at=5.0)
    episode = upload(demo, token, spool)["episode"]

    page = logged_in_page(browser, demo, "labeler", landing="/labeling/")
    item = page.locator(f"#queue li[data-episode='{episode}']")
    item.wait_for(timeout=15_000)
    assert "r8" in item.inner_text() and "not labeled" in item.inner_text()
    page.wait_for_function(  # the thumbnail, taken at the takeover
        f"(() => {{ const img = document.querySelector(\"#queue li[data-episode='{episode}'] img\"); "
        "return img && img.complete && img.naturalWidth === 160; })()")
    screenshot(page, "labeling-queue")
    item.locator(".queue-title a").click()

    page.wait_for_selector("body[data-loaded='true']", timeout=15_000)
    assert page.locator("video").count() == 2
    timeline = page.evaluate("window.foreman.data.clip.timeline.segments.map(s => s.mode)")
    assert timeline == ["robot", "pre_intervention", "human"]
    page.evaluate("window.foreman.seek(5.5)")
    page.wait_for_function("Math.abs(window.foreman.videos[1].currentTime - 5.5) < 0.2")  # cameras move together
    page.keyboard.press(".")  # one frame on
    page.wait_for_function("document.querySelector('#clock').textContent.includes('frame 56')")
    page.keyboard.press("2")  # cross-threaded
    page.keyboard.press("f")  # the failure happened here
    page.keyboard.press("y")  # the person's recovery is a good demonstration
    page.keyboard.press("s")
    page.locator("#history li.current").wait_for(timeout=10_000)
    current = page.locator("#history li.current").inner_text()
    assert "cross threaded at 5.65 s" in current and "good demo" in current and "awaiting a second reviewer" in current
    assert page.locator("#history li.current button").count() == 0  # nobody reviews their own label
    screenshot(page, "labeling-episode")
    page.close()

    reviewer = logged_in_page(browser, demo, "admin", landing=f"/labeling/episodes/{episode}/")
    reviewer.locator("#history li.current button", has_text="Confirm").click()
    reviewer.wait_for_function("document.querySelector('#history li.current').textContent.includes('confirmed by admin')", timeout=10_000)
    reviewer.goto(f"{demo.url}/labeling/?state=confirmed&robot=r8")
    reviewer.locator(f"#queue li[data-episode='{episode}'] .state", has_text="confirmed").wait_for(timeout=10_000)

    # Export the confirmed episode as a LeRobot v3 dataset at half its recorded rate, and download it.
    reviewer.select_option("#export-form select[name=fps]", "5")
    reviewer.click("#export-form button[type=submit]")
    link = reviewer.locator("#exports li.done a", has_text="Download").first
    link.wait_for(timeout=60_000)
    screenshot(reviewer, "labeling-export")
    with reviewer.expect_download() as download_info:
        link.click()
    archive = zipfile.ZipFile(download_info.value.path())
    info = json.loads(archive.read("meta/info.json"))
    assert info["codebase_version"] == "v3.0" and info["total_episodes"] == 1
    assert info["fps"] == 5.0 and info["total_frames"] == 40  # 8 s recorded at 10 fps, every 2nd frame
    assert "at 5 fps" in reviewer.locator("#exports li.done").first.inner_text()
    reviewer.close()
