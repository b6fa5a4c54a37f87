"""Upload processing on real recordings (the agent's own EpisodeRecorder, H.264 through PyAV):
clips, thumbnails, timelines and the labeling queue; bad uploads rejected with a reason and kept."""

from __future__ import annotations

import io
import json
import shutil
import uuid
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from django.test import Client

from tests.labeling.recordings import CAMERAS, record_episode
from webapp.fleet.models import EpisodeUpload
from webapp.labeling.models import Clip, QueueItem
from webapp.labeling.services.processing import upload_process

pytestmark = pytest.mark.django_db

def post(client: Client, token: str, spool: Path, **replace: bytes) -> dict[str, Any]:
    metadata = (spool / "metadata.json").read_text()
    episode = json.loads(metadata)["episode"]
    files: dict[str, Any] = {"metadata": metadata, "steps": io.BytesIO(replace.get("steps", (spool / "steps.parquet").read_bytes()))}
    for camera in json.loads(metadata)["cameras"]:
        files[f"video_{camera}"] = io.BytesIO(replace.get(camera, (spool / f"video_{camera}.mp4").read_bytes()))
    response = client.post(f"/api/robot/episodes/{episode}/upload", files, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def media(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def test_a_failed_takeover_episode_becomes_a_clip_with_timeline_and_thumbnails(fleet: Any, media: Path, tmp_path: Path) -> None:
    spool = record_episode(tmp_path / "agent")
    answer = post(Client(), fleet.tokens["r1"], spool)
    upload = upload_process(answer["upload"])
    assert upload.state == "ready", upload.reason
    clip = Clip.objects.get(upload=upload)
    assert set(clip.videos) == set(CAMERAS)
    for info in clip.videos.values():
        assert info["codec"] == "h264" and info["frames"] == 60 and (info["width"], info["height"]) == (320, 240)
        thumb = media / upload.directory / info["thumbnail"]
        assert thumb.read_bytes()[:2] == b"\xff\xd8"  # a JPEG
    timeline = clip.timeline
    assert [s["mode"] for s in timeline["segments"]] == ["robot", "pre_intervention", "human"]
    robot, pre, human = timeline["segments"]
    assert robot["start"] == 0.0 and abs(pre["start"] - 3.5) < 0.05 and abs(human["start"] - 4.0) < 0.05  # 15 steps
    assert timeline["step_counts"] == {"robot": 105, "pre_intervention": 15, "human": 60, "shared": 0}
    assert [m["kind"] for m in timeline["markers"]] == ["takeover", "end"]
    confidence = [v for _, v in timeline["confidence"]]
    assert confidence[0] == pytest.approx(0.9) and confidence[-1] is None  # no policy confidence while a person drives
    item = QueueItem.objects.get(episode_id=upload.episode_id)
    assert item.state == "open"
    assert upload_process(answer["upload"]).state == "ready"  # idempotent
    assert Clip.objects.count() == 1


def test_a_clean_success_is_described_but_not_queued(fleet: Any, media: Path, tmp_path: Path) -> None:
    spool = record_episode(tmp_path / "agent", seconds=3.0, takeover_at=None, outcome="success")
    upload = upload_process(post(Client(), fleet.tokens["r1"], spool)["upload"])
    assert upload.state == "ready" and Clip.objects.filter(upload=upload).exists()
    assert not QueueItem.objects.exists()


def mpeg4_video(path: Path, frames: int) -> bytes:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=Fraction(10, 1))
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for k in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((240, 320, 3), k, dtype=np.uint8), format="rgb24")
            frame.pts = k
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path.read_bytes()


def test_bad_uploads_are_rejected_with_a_reason_and_kept_for_inspection(fleet: Any, media: Path, tmp_path: Path) -> None:
    client, token = Client(), fleet.tokens["r1"]
    short = record_episode(tmp_path / "short", seconds=1.5, takeover_at=None)
    cases: list[tuple[dict[str, bytes], str]] = [
        ({"head": (short / "video_head.mp4").read_bytes()[:2000]}, "not a playable video"),  # truncated
        ({"head": mpeg4_video(tmp_path / "mpeg4.mp4", 60)}, "codec mpeg4"),
        ({"head": b"\x00" * 5000}, "not a playable video"),
        ({"head": (short / "video_head.mp4").read_bytes()}, "step table spans"),  # a video from another episode
        ({"steps": b"PAR1 but not really"}, "not a readable parquet"),
        ({"steps": (short / "steps.parquet").read_bytes()}, "rows but the metadata says"),
    ]
    for replace, reason in cases:
        spool = record_episode(tmp_path / f"agent-{uuid.uuid4().hex[:6]}")
        upload = upload_process(post(client, token, spool, **replace)["upload"])
        assert upload.state == "rejected" and reason in upload.reason, (reason, upload.reason)
        kept = media / upload.directory
        assert sorted(p.name for p in kept.iterdir()) == ["head.mp4", "metadata.json", "steps.parquet", "wrist_left.mp4"]
        assert not Clip.objects.filter(upload=upload).exists() and not QueueItem.objects.filter(episode_id=upload.episode_id).exists()
        shutil.rmtree(spool, ignore_errors=True)
    assert EpisodeUpload.objects.filter(state="rejected").count() == len(cases)


def test_the_thumbnail_frame_is_kept_while_the_video_is_checked(tmp_path: Path) -> None:
    # One decode: the probe that checks every frame also keeps the one at the moment of the story.
    from webapp.labeling.services.processing import probe_video

    path = tmp_path / "wrist.mp4"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("h264", rate=Fraction(5, 1))
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(20):  # 4 s; frame i is grey level 10·i
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 10 * index, dtype=np.uint8), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    facts = probe_video(path, 5.0, thumbnail_at_s=2.1)
    assert facts.frames == 20 and facts.thumbnail_frame is not None
    assert facts.thumbnail_frame.time == pytest.approx(2.2)  # the first frame at or after 2.1 s
    grey = facts.thumbnail_frame.to_ndarray(format="rgb24").mean()
    assert abs(grey - 110) < 8
    late = probe_video(path, 5.0, thumbnail_at_s=99.0)  # past the end: the last frame
    assert late.thumbnail_frame is not None and late.thumbnail_frame.time == pytest.approx(3.8)
    assert probe_video(path, 5.0).thumbnail_frame is None
