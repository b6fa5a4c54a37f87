"""webapp/labeling/services/uploads.py: an upload is checked against the episode format before
anything is stored; a good one is stored once (re-uploading answers `duplicate`)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.labeling.recordings import record_episode
from webapp.fleet.models import Episode, EpisodeUpload, Robot
from webapp.labeling.services.uploads import UploadRefused, UploadTooLarge, upload_store

pytestmark = pytest.mark.django_db


@pytest.fixture
def media(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def spool_files(spool: Path) -> tuple[str, dict[str, SimpleUploadedFile]]:
    metadata = (spool / "metadata.json").read_text()
    files = {"steps": SimpleUploadedFile("steps.parquet", (spool / "steps.parquet").read_bytes())}
    for camera in json.loads(metadata)["cameras"]:
        files[f"video_{camera}"] = SimpleUploadedFile(f"{camera}.mp4", (spool / f"video_{camera}.mp4").read_bytes())
    return metadata, files


def test_an_upload_is_stored_once(fleet: Any, media: Path, tmp_path: Path) -> None:
    spool = record_episode(tmp_path / "agent", seconds=2.0, takeover_at=1.0)
    metadata, files = spool_files(spool)
    episode_id = uuid.UUID(json.loads(metadata)["episode"])
    robot = Robot.objects.get(name="r1")
    stored = upload_store(robot=robot, episode_id=episode_id, metadata=metadata, files=files)
    assert stored.state == "received"
    upload = EpisodeUpload.objects.get(pk=stored.upload)
    assert sorted(p.name for p in (media / upload.directory).iterdir()) == ["head.mp4", "metadata.json", "steps.parquet", "wrist_left.mp4"]
    episode = Episode.objects.get(pk=episode_id)  # the server never saw the cycle: the upload is its record
    assert episode.outcome == "failure" and episode.intervened and episode.seed == 7
    again = upload_store(robot=robot, episode_id=episode_id, metadata=metadata, files=spool_files(spool)[1])
    assert (again.state, again.upload) == ("duplicate", stored.upload)
    with pytest.raises(UploadRefused, match="another robot"):
        upload_store(robot=Robot.objects.get(name="r2"), episode_id=episode_id, metadata=metadata, files=spool_files(spool)[1])


def test_a_bad_upload_is_refused_and_stores_nothing(fleet: Any, media: Path, tmp_path: Path, settings: Any) -> None:
    spool = record_episode(tmp_path / "agent", seconds=2.0, takeover_at=None)
    metadata, _ = spool_files(spool)
    good = json.loads(metadata)
    episode_id = uuid.UUID(good["episode"])
    robot = Robot.objects.get(name="r1")
    cases: list[tuple[str, str]] = [
        ("{not json", "metadata is not valid"),
        (json.dumps({**good, "colour": "red"}), "Extra inputs are not permitted"),  # unknown keys are refused
        (json.dumps({k: v for k, v in good.items() if k != "fps"}), "fps"),
        (json.dumps({**good, "fps": 0}), "fps"),
        (json.dumps({**good, "cameras": ["../../etc"]}), "cameras"),
        (json.dumps({**good, "outcome": "meh"}), "outcome"),
        (json.dumps({**good, "episode": str(uuid.uuid4())}), "does not match the URL"),
        (json.dumps({**good, "cameras": ["head", "wrist_left", "top"]}), "missing video_top"),
        (json.dumps({**good, "cameras": ["head"]}), "undeclared cameras"),
    ]
    for text, reason in cases:
        with pytest.raises(UploadRefused, match=reason) as refused:
            upload_store(robot=robot, episode_id=episode_id, metadata=text, files=spool_files(spool)[1])
        assert refused.value.http_status == 400
    settings.FOREMAN_MAX_UPLOAD_MB = 0
    with pytest.raises(UploadTooLarge) as too_large:
        upload_store(robot=robot, episode_id=episode_id, metadata=metadata, files=spool_files(spool)[1])
    assert too_large.value.http_status == 413
    assert not (media / "uploads").exists()
    assert not EpisodeUpload.objects.exists() and not Episode.objects.filter(pk=episode_id).exists()
