"""Labels through the HTTP API: versions and history, second-reviewer confirm/dispute, assignment,
queue filters, clip media with byte ranges, refusals that change nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from tests.labeling.test_processing import post, record_episode
from webapp.fleet.models import AuditEvent
from webapp.labeling.models import Label, QueueItem
from webapp.labeling.services.processing import upload_process

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(fleet: Any, settings: Any, tmp_path: Path) -> str:
    settings.MEDIA_ROOT = tmp_path / "media"
    upload = upload_process(post(Client(), fleet.tokens["r2"], record_episode(tmp_path / "agent"))["upload"])
    assert upload.state == "ready"
    return str(upload.episode_id)


def as_user(users: dict[str, Any], name: str) -> Client:
    client = Client(enforce_csrf_checks=False)
    client.force_login(users[name])
    return client


def send(client: Client, path: str, body: dict[str, Any]) -> Any:
    return client.post(path, json.dumps(body), content_type="application/json")


def test_label_versions_review_and_queue(queued: str, users: dict[str, Any]) -> None:
    labeler, admin = as_user(users, "labeler"), as_user(users, "admin")
    detail = labeler.get(f"/api/labeling/episodes/{queued}").json()
    assert detail["queue"]["state"] == "open" and detail["clip"]["timeline"]["segments"][-1]["mode"] == "human"
    assert [m["key"] for m in detail["taxonomy"]][:3] == ["misaligned_nut", "cross_threaded", "over_torque"]

    first = send(labeler, f"/api/labeling/episodes/{queued}/labels", {"failure_mode": "misaligned_nut", "failure_t": 3.2, "good_demo": True})
    assert first.status_code == 200, first.content
    second = send(labeler, f"/api/labeling/episodes/{queued}/labels",
                  {"failure_mode": "cross_threaded", "failure_t": 3.9, "good_demo": True, "notes": "thread caught at 3.9 s"})
    assert second.status_code == 200
    history = labeler.get(f"/api/labeling/episodes/{queued}").json()["labels"]
    assert [(h["failure_mode"], h["current"]) for h in history] == [("cross_threaded", True), ("misaligned_nut", False)]
    assert QueueItem.objects.get(episode_id=queued).state == "labeled"

    own = send(labeler, f"/api/labeling/labels/{second.json()['id']}/review", {"verdict": "confirm"})
    assert own.status_code == 409 and "someone other" in own.json()["detail"]
    stale = send(admin, f"/api/labeling/labels/{first.json()['id']}/review", {"verdict": "confirm"})
    assert stale.status_code == 409 and "newer version" in stale.json()["detail"]
    no_reason = send(admin, f"/api/labeling/labels/{second.json()['id']}/review", {"verdict": "dispute"})
    assert no_reason.status_code == 422
    disputed = send(admin, f"/api/labeling/labels/{second.json()['id']}/review", {"verdict": "dispute", "note": "looks under-torqued"})
    assert disputed.status_code == 200 and disputed.json()["review"] == "disputed"
    assert QueueItem.objects.get(episode_id=queued).state == "disputed"
    todo = labeler.get("/api/labeling/queue").json()
    assert [i["episode"] for i in todo["items"]] == [queued] and todo["items"][0]["label"]["review"] == "disputed"
    actions = list(AuditEvent.objects.filter(action__in=["episode_labeled", "label_disputed"]).values_list("action", flat=True))
    assert sorted(actions) == ["episode_labeled", "episode_labeled", "label_disputed"]


def test_bad_labels_are_refused_and_change_nothing(queued: str, users: dict[str, Any]) -> None:
    labeler = as_user(users, "labeler")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"failure_mode": "gremlins"}, "not in this station's taxonomy"),
        ({"failure_mode": "other"}, "needs a few words"),
        ({"failure_mode": "dropped_nut", "failure_t": 999.0}, "within the episode"),
        ({"failure_t": 1.0}, "needs a failure mode"),
    ]
    for body, reason in cases:
        response = send(labeler, f"/api/labeling/episodes/{queued}/labels", body)
        assert response.status_code == 422 and reason in response.json()["detail"], (body, response.content)
    assert not Label.objects.exists() and QueueItem.objects.get(episode_id=queued).state == "open"
    supervisor = as_user(users, "supervisor")  # reads episodes, may not label
    assert send(supervisor, f"/api/labeling/episodes/{queued}/labels", {"failure_mode": "dropped_nut"}).status_code == 403
    ok = send(labeler, f"/api/labeling/episodes/{queued}/labels", {"failure_mode": "other", "other_text": "nut fell in the fixture"})
    assert ok.status_code == 200


def test_assignment_and_filters(queued: str, users: dict[str, Any]) -> None:
    labeler = as_user(users, "labeler")
    assert send(labeler, f"/api/labeling/episodes/{queued}/assign", {"assignee": "operator"}).status_code == 422  # may not label
    assert send(labeler, f"/api/labeling/episodes/{queued}/assign", {"assignee": "labeler"}).json()["assigned_to"] == "labeler"
    mine = labeler.get("/api/labeling/queue", {"assigned": "me"}).json()
    assert mine["total"] == 1 and mine["items"][0]["assigned_to"] == "labeler" and mine["items"][0]["thumbnail"].endswith(".jpg")
    assert labeler.get("/api/labeling/queue", {"assigned": "none"}).json()["total"] == 0
    assert labeler.get("/api/labeling/queue", {"robot": "r1"}).json()["total"] == 0
    assert labeler.get("/api/labeling/queue", {"robot": "r2", "failure_mode": "cross_threaded"}).json()["total"] == 1


def test_clip_media_supports_ranges_and_serves_only_its_own_files(queued: str, users: dict[str, Any]) -> None:
    labeler = as_user(users, "labeler")
    url = labeler.get(f"/api/labeling/episodes/{queued}").json()["clip"]["videos"]["head"]["url"]
    whole = labeler.get(url)
    size = int(whole["Content-Length"])
    assert whole.status_code == 200 and whole["Accept-Ranges"] == "bytes"
    part = labeler.get(url, HTTP_RANGE="bytes=100-199")
    assert part.status_code == 206 and part["Content-Range"] == f"bytes 100-199/{size}" and len(part.content) == 100
    tail = labeler.get(url, HTTP_RANGE="bytes=-50")
    assert tail.status_code == 206 and len(tail.content) == 50
    assert labeler.get(url, HTTP_RANGE=f"bytes={size + 10}-").status_code == 416
    for name in ("metadata.json", "steps.parquet", "..%2F..%2Fsecret", "head.mp4.bak"):
        assert labeler.get(f"/api/labeling/episodes/{queued}/media/{name}").status_code == 404
