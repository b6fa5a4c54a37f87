"""An ALOHA cycle through the data path a nut station's takes: recorded by the agent's recorder from
the real MuJoCo robot (its scripted expert driving), uploaded, processed into a clip with its own
phases, labeled and exported to LeRobotDataset v3.0 under its own robot type and feature names."""

from __future__ import annotations

import json
import uuid
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from django.test import Client

from robot_agent.drivers.aloha import AlohaRobot
from robot_agent.recording import EpisodeInfo, EpisodeRecorder, EpisodeResult, StepRecord, utc_iso
from robot_agent.robot import clamp_action, declared_features
from tests.labeling.test_processing import post
from webapp.fleet.models import Episode
from webapp.fleet.services.errors import Invalid
from webapp.labeling.models import Clip
from webapp.labeling.services.exports import export_create, export_run
from webapp.labeling.services.labels import episode_taxonomy, label_review, label_submit
from webapp.labeling.services.processing import upload_process

pytestmark = pytest.mark.django_db

SECONDS = 3.0
FPS = 10.0
CAMERAS = ["top", "left_wrist"]


def record_aloha_cycle(state_dir: Path) -> tuple[Path, AlohaRobot]:
    robot = AlohaRobot("gym_aloha/AlohaInsertion-v0")
    expert = robot.expert_policy()
    robot.observe_ground_truth(True)  # the sim's expert plans on ground truth; the recording holds none of it
    recorder = EpisodeRecorder(state_dir, CAMERAS, record_fps=FPS, control_hz=robot.control_hz, robot_type=robot.robot_type,
                               features=declared_features(robot, robot.control_hz))
    recorder.begin(EpisodeInfo(str(uuid.uuid4()), 1, expert.version, 100, utc_iso(1_795_600_000.0), 0.0))
    status = robot.reset(100)
    chunk: list[np.ndarray] = []
    steps = int(SECONDS * robot.control_hz)
    for i in range(steps):
        if not chunk:
            chunk = list(np.asarray(expert.infer(robot.observation()).actions))
        action, _ = clamp_action(chunk.pop(0), robot.action_features)
        status = robot.step(action)
        recorder.add_step(StepRecord(t=i / robot.control_hz, phase=status.phase, mode="autonomous", action_mode="robot",
                                     progress=status.progress, confidence=None, torque_nm=None,
                                     state=robot.state().tolist(), action=action.tolist()))
        if i % int(robot.control_hz / FPS) == 0:
            for camera in CAMERAS:
                recorder.add_frame(camera, robot.capture(camera, (320, 240)))
    spool = recorder.finish(EpisodeResult(outcome="failure", failure_mode="other", duration_s=SECONDS, intervened=False),
                            keep=True).result(timeout=60)
    recorder.close()
    assert spool is not None
    return spool, robot


def test_an_aloha_cycle_is_recorded_processed_and_exported_with_its_own_features(fleet: Any, users: dict[str, Any], settings: Any,
                                                                                   tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    spool, robot = record_aloha_cycle(tmp_path / "agent")
    try:
        upload = upload_process(post(Client(), fleet.tokens["r1"], spool)["upload"])
        assert upload.state == "ready", upload.reason
        clip = Clip.objects.get(episode_id=upload.episode_id)
        assert set(clip.videos) == set(CAMERAS)
        assert {run["phase"] for run in clip.timeline["phases"]} >= {"reach"}  # ALOHA's own phases, from its reward

        # Its labelers choose from what the ALOHA robot declared when it recorded, not the nut station's
        # taxonomy (the robot is on the demo's nut station, which has none of its own).
        episode = Episode.objects.select_related("robot").get(pk=upload.episode_id)
        assert [mode.key for mode in episode_taxonomy(episode)] == ["missed_grasp", "dropped_part", "misaligned_insertion", "parts_collided",
                                                                    "takt_overrun", "fault", "other"]
        with pytest.raises(Invalid, match="dropped_nut"):
            label_submit(episode_id=str(upload.episode_id), user=users["labeler"], failure_mode="dropped_nut", failure_t=2.0, good_demo=False)
        label = label_submit(episode_id=str(upload.episode_id), user=users["labeler"], failure_mode="misaligned_insertion", failure_t=2.0,
                             good_demo=False)
        label_review(label_id=str(label.id), user=users["admin"], verdict="confirm")
        export = export_run(str(export_create(user=users["labeler"], format="lerobot_v3", episode_ids=[str(upload.episode_id)]).id))
        assert export.state == "done", export.message
        with zipfile.ZipFile(settings.MEDIA_ROOT / export.file) as archive:
            info = json.loads(archive.read("meta/info.json"))
            archive.extractall(tmp_path / "dataset")
        assert info["robot_type"] == "aloha" and info["total_frames"] == int(SECONDS * FPS)
        features = info["features"]
        assert features["action"]["names"] == [f.name for f in robot.action_features] and features["action"]["shape"] == [14]
        assert features["action"]["names"][:2] == ["left.waist", "left.shoulder"] and features["action"]["names"][-1] == "right.gripper"
        assert features["observation.state"]["names"] == [f.name for f in robot.state_features] and features["observation.state"]["shape"] == [28]
        assert {k for k, f in features.items() if f["dtype"] == "video"} == {f"observation.images.{c}" for c in CAMERAS}
        data = pq.read_table(tmp_path / "dataset" / "data" / "chunk-000" / "file-000.parquet")
        actions = np.asarray(data.column("action").to_pylist())
        lows = np.array([f.low for f in robot.action_features])
        highs = np.array([f.high for f in robot.action_features])
        assert np.all(actions >= lows - 1e-6) and np.all(actions <= highs + 1e-6)  # what the robot was really sent
        assert np.ptp(actions[:, 0]) > 0 or np.ptp(actions[:, 7]) > 0  # the arms moved
    finally:
        robot.close()
