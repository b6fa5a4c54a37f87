"""A Foreman export loaded by LeRobot 0.4.4 itself (`LeRobotDataset`, torchcodec decoding the videos)
in its own environment (scripts/lerobot_env.sh): every frame, the video frame counts against the
episodes', Foreman's per-row columns, and a DataLoader over action chunks with delta_timestamps."""

from __future__ import annotations

import json
import subprocess
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from django.test import Client

from tests.labeling.recordings import record_episode
from tests.labeling.test_processing import post
from webapp.labeling.services.exports import export_create, export_run
from webapp.labeling.services.labels import label_review, label_submit
from webapp.labeling.services.processing import upload_process

pytestmark = pytest.mark.django_db
LOADER = Path(__file__).with_name("lerobot_load.py")
CHUNK = 10  # one second of actions at the export's 10 fps


def test_lerobots_own_loader_reads_every_frame_of_an_export(fleet: Any, users: dict[str, Any], settings: Any, tmp_path: Path,
                                                          lerobot_python: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    episodes = []
    for index, (seconds, takeover) in enumerate(((6.0, 4.0), (9.0, 6.0))):
        spool = record_episode(tmp_path / f"agent{index}", seconds=seconds, takeover_at=takeover, lease_id=str(uuid.uuid4()),
                               started_unix=1_795_600_000.0 + 100 * index)
        upload = upload_process(post(Client(), fleet.tokens["r1"], spool)["upload"])
        assert upload.state == "ready", upload.reason
        episodes.append(str(upload.episode_id))
        label = label_submit(episode_id=episodes[-1], user=users["labeler"], failure_mode="cross_threaded", failure_t=3.0, good_demo=True)
        label_review(label_id=str(label.id), user=users["admin"], verdict="confirm")
    export = export_run(str(export_create(user=users["labeler"], format="lerobot_v3", episode_ids=episodes).id))
    assert export.state == "done", export.message
    root = tmp_path / "dataset"
    with zipfile.ZipFile(settings.MEDIA_ROOT / export.file) as archive:
        archive.extractall(root)

    result = subprocess.run([str(lerobot_python), str(LOADER), str(root), str(CHUNK)], capture_output=True, text=True, timeout=600,
                            env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-4000:]
    read = json.loads(result.stdout.strip().splitlines()[-1])

    assert read["len"] == read["total_frames"] == 60 + 90
    assert read["frames_per_episode"] == read["lengths"] == {"0": 60, "1": 90}
    for episode, length in read["lengths"].items():  # each camera's file holds exactly its episode's frames
        assert read["video_frames"][episode] == {camera: length for camera in read["cameras"]}
    assert read["cameras"] == ["observation.images.head", "observation.images.wrist_left"]
    assert read["image_shapes"] == {camera: [3, 240, 320] for camera in read["cameras"]}  # channels first, as LeRobot's policies take
    low, high = read["value_range"]
    assert 0.0 <= low < high <= 1.0
    # Foreman's columns come through the loader as written.
    data = pq.read_table(root / "data" / "chunk-000" / "file-000.parquet").to_pydict()
    for name in ("control_source", "lease_index"):
        assert read["columns"][name] == [float(v) for v in data[name]]
    assert read["columns"]["sample_weight"] == pytest.approx(data["sample_weight"])
    assert read["batch_action"] == [8, CHUNK, 10] and read["batch_pad"] == [8, CHUNK]
    assert read["task"] == "install self-tapping nuts, both sides"
