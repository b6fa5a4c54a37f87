"""Dataset exports on real recordings: LeRobotDataset v3.0 checked against what LeRobot's loader
requires (../shared/lerobot-v3-format.md, including the mistakes that load silently wrong), XR0's
post-training format, determinism, refusals, and the HTTP flow with progress and download."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.test import Client
from django.utils import timezone

from foreman_learning.weights import HUMAN_WEIGHT_SHARE, PRE_INTERVENTION_WEIGHT
from foreman_protocol.episodes import ACTION_MODES
from foreman_protocol.messages import FeatureSpec, Outcome, RobotFeatures
from tests.labeling.recordings import record_episode, sim_declaration
from tests.labeling.test_processing import post
from webapp.fleet.models import ControlSession, Robot
from webapp.fleet.services.errors import Invalid
from webapp.labeling.models import Export
from webapp.labeling.services.exports import export_create, export_run
from webapp.labeling.services.labels import label_review, label_submit
from webapp.labeling.services.processing import upload_process

pytestmark = pytest.mark.django_db


@pytest.fixture
def labeled(fleet: Any, users: dict[str, Any], settings: Any, tmp_path: Path) -> list[str]:
    """Two confirmed labels (a failure taken over at 4 s, a longer one at 6 s) and one unlabeled episode."""
    settings.MEDIA_ROOT = tmp_path / "media"
    episodes = []
    for index, (seconds, takeover) in enumerate(((6.0, 4.0), (9.0, 6.0), (5.0, 3.0))):
        spool = record_episode(tmp_path / f"agent{index}", seconds=seconds, takeover_at=takeover, started_unix=1_795_600_000.0 + 100 * index)
        upload = upload_process(post(Client(), fleet.tokens["r1"], spool)["upload"])
        assert upload.state == "ready", upload.reason
        episodes.append(str(upload.episode_id))
    for key, mode in zip(episodes[:2], ("cross_threaded", "dropped_nut"), strict=True):
        label = label_submit(episode_id=key, user=users["labeler"], failure_mode=mode, failure_t=3.0, good_demo=True)
        label_review(label_id=str(label.id), user=users["admin"], verdict="confirm")
    return episodes


def unzip(export: Export, media: Path, into: Path) -> Path:
    with zipfile.ZipFile(media / export.file) as archive:
        names = archive.namelist()
        assert all(not n.startswith("/") and ".." not in n for n in names)
        archive.extractall(into)
    return into


def video_frames(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        return [float(frame.time) for frame in container.decode(stream)]


def test_lerobot_v3_export_is_what_lerobots_loader_requires(labeled: list[str], users: dict[str, Any], settings: Any, tmp_path: Path) -> None:
    export = export_run(str(export_create(user=users["labeler"], format="lerobot_v3").id))
    assert export.state == "done", export.message
    assert export.progress == 1.0 and len(export.episodes) == 2  # the unlabeled episode stays out
    root = unzip(export, settings.MEDIA_ROOT, tmp_path / "dataset")

    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 10.0 and info["total_episodes"] == 2
    assert info["total_frames"] == 60 + 90 and info["splits"] == {"train": "0:2"}
    features = info["features"]
    # The columns are named as the robot declared them (hello.features, carried by each episode).
    assert info["robot_type"] == "foreman_sim_nut_station"
    assert features["observation.state"]["names"][:3] == ["left.x", "left.y", "left.z"] and features["observation.state"]["names"][-1] == "cycle_time"
    assert features["action"]["names"] == [f"{side}.{a}" for side in ("left", "right") for a in ("vx", "vy", "vz", "grip", "spin")]
    assert len(features["observation.state"]["names"]) == features["observation.state"]["shape"][0]
    for name in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        assert features[name]["shape"] == [1]
    cameras = [k for k, f in features.items() if f["dtype"] == "video"]
    assert cameras == ["observation.images.head", "observation.images.wrist_left"]

    data = pq.read_table(root / "data" / "chunk-000" / "file-000.parquet")
    # Exactly the non-video features as columns: an extra fails to load, a missing one comes back None.
    assert set(data.column_names) == {k for k, f in features.items() if f["dtype"] != "video"}
    assert pa.types.is_fixed_size_list(data.schema.field("observation.state").type)
    assert data.column("index").to_pylist() == list(range(150))
    frame_index = data.column("frame_index").to_pylist()
    assert frame_index == list(range(60)) + list(range(90))
    assert data.column("timestamp").to_pylist() == pytest.approx([np.float32(i / 10) for i in frame_index])
    modes = data.column("action_mode").to_pylist()
    intervention = data.column("intervention").to_pylist()
    assert set(modes[:60]) == {0, 1, 2}  # robot, pre_intervention, human within the first episode
    assert intervention == [m in (2, 3) for m in modes]
    assert intervention[:60].index(True) == 40  # the takeover at 4 s, 10 fps

    tasks = pq.read_table(root / "meta" / "tasks.parquet")
    pandas_meta = json.loads(tasks.schema.metadata[b"pandas"])
    assert pandas_meta["index_columns"] == ["__index_level_0__"]  # else item["task"] becomes an int
    assert tasks.column("task_index").to_pylist() == [0] and tasks.column("__index_level_0__").to_pylist() == ["install self-tapping nuts, both sides"]

    episodes = pq.read_table(root / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pylist()
    assert [e["episode_index"] for e in episodes] == [0, 1]
    assert [(e["dataset_from_index"], e["dataset_to_index"]) for e in episodes] == [(0, 60), (60, 150)]
    assert [e["failure_mode"] for e in episodes] == ["cross_threaded", "dropped_nut"] and not any(e["success"] for e in episodes)
    for episode in episodes:
        for camera in cameras:
            assert episode[f"videos/{camera}/from_timestamp"] == 0.0
            path = root / "videos" / camera / f"chunk-{episode[f'videos/{camera}/chunk_index']:03d}" / f"file-{episode[f'videos/{camera}/file_index']:03d}.mp4"
            times = video_frames(path)
            assert len(times) == episode["length"]
            # The loader wants frame k at k/fps within 1e-4 s.
            assert max(abs(t - k / 10) for k, t in enumerate(times)) < 1e-4
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            assert [stream.codec_context.height, stream.codec_context.width, 3] == features[camera]["shape"]

    stats = json.loads((root / "meta" / "stats.json").read_text())
    for name in ("observation.state", "action", "intervention"):
        assert set(stats[name]) >= {"min", "max", "mean", "std", "q01", "q10", "q50", "q90", "q99", "count"}
    assert stats["intervention"]["min"] == [False] and stats["intervention"]["max"] == [True]
    assert np.asarray(stats["observation.images.head"]["mean"]).shape == (3, 1, 1)
    assert len(stats["observation.state"]["mean"]) == features["observation.state"]["shape"][0]


def test_every_row_says_who_held_control_under_which_lease_and_its_training_weight(fleet: Any, users: dict[str, Any], settings: Any,
                                                                                    tmp_path: Path) -> None:
    """A cycle a person finished (success, good demonstration) under a lease the server knows, and a
    failed one whose recovery the labeler rejected, under a lease the server never saw."""
    settings.MEDIA_ROOT = tmp_path / "media"
    known, unknown = str(uuid.uuid4()), str(uuid.uuid4())
    started = timezone.now()
    ControlSession.objects.create(id=known, robot=Robot.objects.get(name="r1"), user=users["operator"], mode="teleop",
                                  started_at=started, ended_at=started + timedelta(seconds=2), expires_at=started + timedelta(seconds=5))
    episodes = []
    cycles: list[tuple[Outcome, str, bool]] = [("success", known, True), ("failure", unknown, False)]
    for index, (outcome, lease, good_demo) in enumerate(cycles):
        spool = record_episode(tmp_path / f"agent{index}", seconds=6.0, takeover_at=4.0, outcome=outcome, lease_id=lease,
                               started_unix=1_795_600_000.0 + 100 * index)
        upload = upload_process(post(Client(), fleet.tokens["r1"], spool)["upload"])
        assert upload.state == "ready", upload.reason
        episodes.append(str(upload.episode_id))
        label = label_submit(episode_id=episodes[-1], user=users["labeler"], failure_mode="" if outcome == "success" else "dropped_nut",
                             failure_t=None if outcome == "success" else 3.0, good_demo=good_demo)
        label_review(label_id=str(label.id), user=users["admin"], verdict="confirm")
    export = export_run(str(export_create(user=users["labeler"], format="lerobot_v3", episode_ids=episodes).id))
    assert export.state == "done", export.message
    root = unzip(export, settings.MEDIA_ROOT, tmp_path / "dataset")
    info = json.loads((root / "meta" / "info.json").read_text())
    data = pq.read_table(root / "data" / "chunk-000" / "file-000.parquet").to_pydict()
    foreman = info["foreman"]
    assert foreman["control_sources"] == ["policy", "person", "shared", "none"]
    assert [(lease["index"], lease["lease_id"], lease["operator"], lease["mode"]) for lease in foreman["leases"]] == [
        (0, known, "operator", "teleop"), (1, unknown, None, None)]  # what the server knows of each
    assert {name: info["features"][name]["dtype"] for name in ("control_source", "lease_index", "sample_weight")} == {
        "control_source": "int64", "lease_index": "int64", "sample_weight": "float32"}

    first, second = slice(0, 60), slice(60, 120)  # 6 s at 10 fps each; the person took over at 4 s
    assert data["control_source"][first] == [0] * 40 + [1] * 20  # the policy, then a person
    assert data["lease_index"][first] == [-1] * 40 + [0] * 20 and data["lease_index"][second] == [-1] * 40 + [1] * 20
    modes = np.asarray(data["action_mode"])
    weights = np.asarray(data["sample_weight"], dtype=np.float64)
    robot, pre, human = (ACTION_MODES.index(m) for m in ("robot", "pre_intervention", "human"))
    # The successful cycle: the robot's steps 1, its last ones before the takeover down-weighted, the
    # person's scaled to the round's share; the failed cycle whose recovery was rejected: nothing.
    assert set(weights[first][modes[first] == robot]) == {1.0}
    assert set(np.round(weights[first][modes[first] == pre], 6)) == {PRE_INTERVENTION_WEIGHT}
    assert weights[second].sum() == 0.0
    share = weights[modes == human].sum() / weights.sum()
    assert share == pytest.approx(HUMAN_WEIGHT_SHARE, abs=1e-5)
    assert foreman["sample_weight"] == {"pre_intervention": PRE_INTERVENTION_WEIGHT, "human_share": HUMAN_WEIGHT_SHARE}


def test_an_upload_naming_leases_by_anything_but_their_ids_is_rejected(fleet: Any, settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    spool = record_episode(tmp_path / "agent", lease_id="../../etc/passwd")
    upload = upload_process(post(Client(), fleet.tokens["r1"], spool)["upload"])
    assert upload.state == "rejected" and "lease_id" in upload.reason


def test_exports_are_deterministic(labeled: list[str], users: dict[str, Any], settings: Any) -> None:
    first = export_run(str(export_create(user=users["labeler"], format="lerobot_v3").id))
    second = export_run(str(export_create(user=users["labeler"], format="lerobot_v3").id))
    assert first.sha256 == second.sha256 and first.file != second.file


def test_an_export_at_a_lower_rate_keeps_every_kth_recorded_frame_with_its_own_step(labeled: list[str], users: dict[str, Any],
                                                                                   settings: Any, tmp_path: Path) -> None:
    full = unzip(export_run(str(export_create(user=users["labeler"], format="lerobot_v3").id)), settings.MEDIA_ROOT, tmp_path / "full")
    export = export_run(str(export_create(user=users["labeler"], format="lerobot_v3", fps=5).id))
    assert export.state == "done", export.message
    assert export.filters["fps"] == 5
    root = unzip(export, settings.MEDIA_ROOT, tmp_path / "five")
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["fps"] == 5.0 and info["total_frames"] == 30 + 45  # 6 s and 9 s at 5 fps
    assert info["features"]["observation.images.head"]["info"]["video.fps"] == 5.0
    every_second = pq.read_table(full / "data" / "chunk-000" / "file-000.parquet").to_pydict()
    rows = pq.read_table(root / "data" / "chunk-000" / "file-000.parquet").to_pydict()
    kept = [i for i, frame in enumerate(every_second["frame_index"]) if frame % 2 == 0]  # recorded frames 0, 2, 4, ... of each episode
    for name in ("observation.state", "action", "action_mode", "control_source", "lease_index"):
        assert rows[name] == [every_second[name][i] for i in kept], name
    assert rows["timestamp"] == pytest.approx([np.float32(k / 5) for k in rows["frame_index"]])
    episodes = pq.read_table(root / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pylist()
    for episode in episodes:
        path = root / "videos" / "observation.images.head" / "chunk-000" / f"file-{episode['episode_index']:03d}.mp4"
        times = video_frames(path)
        assert len(times) == episode["length"] and max(abs(t - k / 5) for k, t in enumerate(times)) < 1e-4
    # A rate that does not divide the recording's is refused with the ones that do; XR0 keeps its own.
    with pytest.raises(Invalid, match=r"recorded at 10 fps: an export's rate must divide it \(10, 5, 2, 1 fps\)"):
        export_create(user=users["labeler"], format="lerobot_v3", fps=3)
    with pytest.raises(Invalid, match="option of LeRobot exports"):
        export_create(user=users["labeler"], format="xr0", fps=5)


def test_xr0_export(labeled: list[str], users: dict[str, Any], settings: Any, tmp_path: Path) -> None:
    export = export_run(str(export_create(user=users["labeler"], format="xr0", episode_ids=labeled[:1]).id))
    assert export.state == "done", export.message
    root = unzip(export, settings.MEDIA_ROOT, tmp_path / "xr0")
    (directory,) = [p for p in root.iterdir() if p.is_dir()]
    episode = json.loads((directory / "episode.json").read_text())
    n = episode["num_frames"]
    assert n == 60 and episode["trajectory_type"] == "success"  # a good human recovery is a demonstration
    for group in ("proprios", "actions"):
        for side in ("left", "right"):
            assert np.asarray(episode[group][f"{side}_ee_pos"]).shape == (n, 3)
            assert np.asarray(episode[group][f"{side}_ee_rotm"]).shape == (n, 9)
            assert np.asarray(episode[group][f"{side}_arm_joint"]).shape == (n, 6)
            assert np.asarray(episode[group][f"{side}_gripper_pos"]).shape == (n, 1)
    assert set(episode["observations"]) == {"ego", "wrist_left"}
    for view in episode["observations"].values():
        assert len(video_frames(directory / view[0]["path"])) == n and view[0]["end"] == n
    conversation = episode["instruction"]["general"][0]["conversations"]
    assert conversation[0]["value"].count("<image>") == 2 and conversation[1]["value"] == "<bot></bot>"


def test_export_refusals_and_http_flow(labeled: list[str], users: dict[str, Any], settings: Any) -> None:
    with pytest.raises(Invalid, match="no labeled episodes"):
        export_create(user=users["labeler"], format="lerobot_v3", robot="r3")
    with pytest.raises(Invalid, match="cannot be exported"):
        export_create(user=users["labeler"], format="lerobot_v3", episode_ids=labeled)  # the third has no label
    client = Client()
    client.force_login(users["labeler"])
    started = client.post("/api/labeling/exports", json.dumps({"format": "lerobot_v3", "review": "labeled"}), content_type="application/json")
    assert started.status_code == 200, started.content
    body = started.json()
    assert body["state"] == "queued" and body["episodes"] == 2 and body["download"] is None
    export_run(body["id"])  # what the Celery worker does (tests/integration runs a real worker)
    done = client.get(f"/api/labeling/exports/{body['id']}").json()
    assert done["state"] == "done" and done["progress"] == 1.0
    download = client.get(done["download"])
    assert download.status_code == 200 and "attachment" in download["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    assert "meta/info.json" in archive.namelist()
    client.force_login(users["operator"])
    assert client.get(done["download"]).status_code == 403


def label_one(fleet: Any, users: dict[str, Any], directory: Path, robot: str = "r2", **recording: Any) -> str:
    spool = record_episode(directory, **recording)
    upload = upload_process(post(Client(), fleet.tokens[robot], spool)["upload"])
    assert upload.state == "ready", upload.reason
    label = label_submit(episode_id=str(upload.episode_id), user=users["labeler"], failure_mode="cross_threaded", failure_t=3.0, good_demo=True)
    label_review(label_id=str(label.id), user=users["admin"], verdict="confirm")
    return str(upload.episode_id)


def test_episodes_of_robots_that_declare_differently_are_exported_apart(labeled: list[str], fleet: Any, users: dict[str, Any],
                                                                         settings: Any, tmp_path: Path) -> None:
    renamed = sim_declaration()
    renamed = RobotFeatures(control_hz=renamed.control_hz, state=renamed.state,
                            action=[FeatureSpec(name=f"joint{i}", unit="rad") for i in range(len(renamed.action))], teleop=None)
    other = label_one(fleet, users, tmp_path / "other", robot_type="so101_follower", features=renamed)
    export = export_run(str(export_create(user=users["labeler"], format="lerobot_v3", episode_ids=[labeled[0], other]).id))
    assert export.state == "failed" and "differ in robot type: export each kind of robot separately" in export.message, export.message
    alone = export_run(str(export_create(user=users["labeler"], format="lerobot_v3", episode_ids=[other]).id))
    assert alone.state == "done", alone.message
    info = json.loads(zipfile.ZipFile(settings.MEDIA_ROOT / alone.file).read("meta/info.json"))
    assert info["robot_type"] == "so101_follower" and info["features"]["action"]["names"] == [f"joint{i}" for i in range(10)]


def test_an_episode_recorded_without_a_declaration_exports_unnamed_or_beside_declared_ones(
        labeled: list[str], fleet: Any, users: dict[str, Any], settings: Any, tmp_path: Path) -> None:
    old = label_one(fleet, users, tmp_path / "old", declared=False)
    export = export_run(str(export_create(user=users["labeler"], format="lerobot_v3", episode_ids=[old]).id))
    assert export.state == "done", export.message
    info = json.loads(zipfile.ZipFile(settings.MEDIA_ROOT / export.file).read("meta/info.json"))
    assert info["robot_type"] == "unknown" and info["features"]["action"]["names"] is None
    # Beside episodes recorded after the agent's upgrade, it takes their declaration (same widths).
    mixed = export_run(str(export_create(user=users["labeler"], format="lerobot_v3", episode_ids=[old, labeled[0]]).id))
    assert mixed.state == "done", mixed.message
    info = json.loads(zipfile.ZipFile(settings.MEDIA_ROOT / mixed.file).read("meta/info.json"))
    assert info["robot_type"] == "foreman_sim_nut_station" and info["features"]["action"]["names"][0] == "left.vx"


def test_a_step_table_wider_than_the_declaration_is_rejected(fleet: Any, settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    narrow = sim_declaration()
    narrow = RobotFeatures(control_hz=narrow.control_hz, state=narrow.state, action=narrow.action[:6], teleop=None)
    upload = upload_process(post(Client(), fleet.tokens["r1"], record_episode(tmp_path / "bad", features=narrow))["upload"])
    assert upload.state == "rejected" and "action has 10 numbers per step, the robot declares 6 action features" in upload.reason


def test_at_the_control_rate_every_frame_is_paired_with_its_own_step() -> None:
    from webapp.labeling.services.lerobot import nearest_steps

    # The control loop runs each step a little after its tick; the recorder's frame k is at k/30 exactly.
    jitter = np.random.default_rng(3).uniform(0.0, 0.012, 900)
    steps = np.arange(900) / 30 + jitter
    steps -= steps[0]
    assert (nearest_steps(steps, np.arange(900) / 30) == np.arange(900)).all()
    # A lower rate takes the step nearest each frame; past the last step, the last.
    assert nearest_steps(steps, np.array([0.0, 0.1, 1.0, 40.0])).tolist() == [0, 3, 30, 899]
