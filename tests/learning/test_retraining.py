"""Retraining rounds on real recorded sim cycles: upload → processing → label → export → the Celery
task fine-tunes, evaluates before/after on held-out seeds and registers the new policy; refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from foreman_learning.policies.visuomotor import DEFAULT_WEIGHTS
from tests.labeling.recordings import record_episode
from tests.labeling.test_processing import post
from tests.sim.recorded import record_sim_cycle
from webapp.fleet.models import AuditEvent, PolicyVersion
from webapp.fleet.services.errors import Conflict, Forbidden, Invalid, NotFound
from webapp.labeling.models import Export
from webapp.labeling.services.exports import export_create, export_run
from webapp.labeling.services.labels import label_review, label_submit
from webapp.labeling.services.processing import upload_process
from webapp.learning.models import RetrainingRound
from webapp.learning.services.policies import policy_register
from webapp.learning.services.retraining import retraining_run, retraining_start

pytestmark = pytest.mark.django_db
SMALL = {"epochs": 1, "rehearsal_episodes": 1, "eval_episodes": 2, "control": 1}


def upload(fleet: Any, spool: Path) -> str:
    processed = upload_process(post(Client(), fleet.tokens["r1"], spool)["upload"])
    assert processed.state == "ready", processed.reason
    return str(processed.episode_id)


@pytest.fixture
def exported(fleet: Any, users: dict[str, Any], settings: Any, tmp_path: Path) -> dict[str, Any]:
    """Two intervened sim cycles and one synthetic (not replayable) recording, labeled and exported."""
    settings.MEDIA_ROOT = tmp_path / "media"
    policy_register(name="bc-sim-v1", checkpoint=DEFAULT_WEIGHTS, evaluation={"success_rate": 0.88})
    cycles = [record_sim_cycle(tmp_path / f"agent{i}", seed=1003 + i, hold_at=200 + 150 * i, cameras=("head",), record_fps=10.0) for i in range(2)]
    episodes = [upload(fleet, cycle.spool) for cycle in cycles]
    synthetic = upload(fleet, record_episode(tmp_path / "synthetic", seconds=4.0, takeover_at=2.0))
    for key, cycle in zip([*episodes, synthetic], [*cycles, None], strict=True):
        mode = (cycle.station.outcome.failure_mode if cycle else "cross_threaded") or ""
        label = label_submit(episode_id=key, user=users["labeler"], failure_mode=mode, failure_t=None, good_demo=True)
        label_review(label_id=str(label.id), user=users["admin"], verdict="confirm")
    export = export_run(str(export_create(user=users["labeler"], format="lerobot_v3").id))
    assert export.state == "done", export.message
    return {"export": export, "episodes": episodes, "synthetic": synthetic, "cycles": cycles}


def test_a_round_fine_tunes_evaluates_and_registers_the_new_policy(exported, users, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as queued:
        started = retraining_start(user=users["admin"], export_id=str(exported["export"].id), options=SMALL)
    assert len(queued) == 1 and started.state == "queued"  # the Celery task is sent on commit
    round_ = retraining_run(str(started.pk))  # what the worker does (tests/integration runs a real one)
    assert round_.state == "done", round_.error
    assert round_.progress == 1.0 and round_.base_policy == "bc-sim-v1"
    report = round_.report
    for key in ("success_before", "success_after", "cycle_s_before", "cycle_s_after", "episodes_used", "interventions_used",
                "eval_episodes", "wall_s"):
        assert key in report, key
    assert report["episodes_used"] == 2 and report["interventions_used"] == 2 and report["eval_episodes"] == 2
    assert report["episodes_skipped"] == {exported["synthetic"]: report["episodes_skipped"][exported["synthetic"]]}
    assert "does not replay" in report["episodes_skipped"][exported["synthetic"]]
    assert report["steps"]["human"] > 0 and report["steps"]["pre_intervention"] > 0
    assert report["rehearsal_episodes"] == SMALL["rehearsal_episodes"]
    # The control: the same fine-tune on the rehearsal alone, evaluated on the same seeds.
    assert 0.0 <= report["success_control"] <= 1.0 and isinstance(report["failure_modes_control"], dict)
    new = PolicyVersion.objects.get(name="bc-sim-v1-r1")
    assert round_.result == new and new.parent.name == "bc-sim-v1" and new.sha256
    assert new.evaluation["success_rate"] == report["success_after"] and new.evaluation["base_success_rate"] == report["success_before"]
    actions = list(AuditEvent.objects.filter(action__startswith="retraining_").values_list("action", flat=True))
    assert sorted(actions) == ["retraining_finished", "retraining_started"]

    # The registered checkpoint loads as a policy a robot can run.
    from django.conf import settings

    from foreman_learning.policies.factory import load_policy

    assert load_policy(str(Path(settings.MEDIA_ROOT) / new.checkpoint)).version == "bc-sim-v1-r1"


def test_refusals(exported, users, fleet):
    export_id = str(exported["export"].id)
    with pytest.raises(Forbidden):
        retraining_start(user=users["labeler"], export_id=export_id)
    with pytest.raises(NotFound):
        retraining_start(user=users["admin"], export_id="00000000-0000-0000-0000-000000000000")
    with pytest.raises(Invalid, match="held out"):
        retraining_start(user=users["admin"], export_id=export_id, options={"eval_seed": 5})
    with pytest.raises(Invalid):
        retraining_start(user=users["admin"], export_id=export_id, options={"epochs": 0})
    with pytest.raises(Invalid, match="control"):
        retraining_start(user=users["admin"], export_id=export_id, options={"control": 1, "rehearsal_episodes": 0})
    with pytest.raises(NotFound, match="no registered checkpoint"):
        retraining_start(user=users["admin"], export_id=export_id, base_policy="nope-v9")
    with pytest.raises(Conflict, match="already exists"):
        retraining_start(user=users["admin"], export_id=export_id, name="bc-sim-v1")
    Export.objects.filter(pk=export_id).update(state=Export.State.RUNNING)
    with pytest.raises(Conflict, match="wait until it is done"):
        retraining_start(user=users["admin"], export_id=export_id)
    assert not RetrainingRound.objects.exists()


def test_http_start_and_progress(exported, users, django_capture_on_commit_callbacks):
    client = Client()
    client.force_login(users["admin"])
    body = {"export": str(exported["export"].id), "name": "bc-sim-v1-http", "options": SMALL}
    with django_capture_on_commit_callbacks() as queued:
        response = client.post("/api/learning/retraining", body, content_type="application/json")
    assert response.status_code == 200, response.content
    round_id = response.json()["id"]
    assert response.json()["state"] == "queued" and len(queued) == 1
    retraining_run(round_id)
    detail = client.get(f"/api/learning/retraining/{round_id}").json()
    assert detail["state"] == "done" and detail["result"] == "bc-sim-v1-http" and detail["progress"] == 1.0
    assert client.get("/api/learning/retraining").json()["rounds"][0]["id"] == round_id
    bad = client.post("/api/learning/retraining", {"export": "not-a-uuid"}, content_type="application/json")
    assert bad.status_code == 404
