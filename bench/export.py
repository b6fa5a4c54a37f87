"""bench export: seconds to export one hour of 30 fps episode data to LeRobotDataset v3.0, and what
recording it at that rate (the agent's default: the control rate) costs the robot's computer.

Records MINUTES of 30 fps episodes (two cameras, 320×240, the agent's recorder and sizes; its CPU
time measured) from moving simulator images, uploads and processes them through the real services on an embedded
database, labels them, then times the export (re-encode, parquet, stats, zip). The time scales
with frames, so one hour is measured minutes × 60 / MINUTES; both numbers are reported.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import finish

MINUTES = 4.0
EPISODE_S = 60.0
FPS = 30.0


def moving_frames(camera: str, count: int = 80) -> list[np.ndarray]:
    """Moving, textured frames: a simulator render shifted a little each frame, with sensor noise
    (made once, before any timing: the recorder's cost is measured, not the renderer's)."""
    from foreman_sim.render import render
    from foreman_sim.station import NutStation

    base = render(NutStation(7), camera, (320, 240))
    rng = np.random.default_rng(0)
    noise = rng.integers(-6, 7, size=(8, 240, 320, 3), dtype=np.int16)
    return [np.clip(np.roll(base, shift=(k % 40) - 20, axis=1).astype(np.int16) + noise[k % 8], 0, 255).astype(np.uint8)
            for k in range(count)]


def record(state_dir: Path, index: int, frames: dict[str, list[np.ndarray]]) -> tuple[Path, float]:
    """One episode through the agent's recorder at the control rate (a frame per camera per step);
    returns its spool entry and the CPU seconds the recording cost (this process, all threads)."""
    from robot_agent.recording import EpisodeInfo, EpisodeRecorder, EpisodeResult, StepRecord, utc_iso

    cpu = time.process_time()
    recorder = EpisodeRecorder(state_dir, list(frames), record_fps=FPS, control_hz=FPS)
    episode = f"00000000-0000-4000-8000-{index:012d}"
    recorder.begin(EpisodeInfo(episode, index, "bc-sim-v1", index, utc_iso(1_795_600_000.0 + 100 * index), 0.0))
    steps = int(EPISODE_S * FPS)
    for i in range(steps):
        human = i >= steps * 2 // 3
        if i == steps * 2 // 3:
            recorder.mark_intervention(i / FPS)
        recorder.add_step(StepRecord(t=i / FPS, phase="nut 2/4", mode="teleop" if human else "autonomous",
                                     action_mode="human" if human else "robot", progress=i / steps, confidence=0.8,
                                     torque_nm=1.0, state=[float(i % 7)] * 19, action=[0.01] * 10))
        for camera, images in frames.items():
            recorder.add_frame(camera, images[i % len(images)])
    spool = recorder.finish(EpisodeResult("failure", "cross_threaded", EPISODE_S, True), keep=True).result(timeout=600)
    recorder.close()
    assert spool is not None
    return spool, time.process_time() - cpu


def run() -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="foreman-bench-export-"))
    for key in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(key, None)
    os.environ.update(FOREMAN_SQLITE_PATH=str(work / "db.sqlite3"), FOREMAN_MEDIA_ROOT=str(work / "media"),
                      DJANGO_SETTINGS_MODULE="webapp.settings", FOREMAN_LOG_LEVEL="WARNING")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import json
    import shutil

    from django.conf import settings
    from django.contrib.auth import get_user_model

    from webapp.fleet.models import Episode, EpisodeUpload, Robot
    from webapp.fleet.services.demo import demo_seed
    from webapp.labeling.services.exports import export_create, export_run
    from webapp.labeling.services.labels import label_submit
    from webapp.labeling.services.processing import upload_process

    demo_seed(robots=1, password="bench-only")
    robot = Robot.objects.get(name="r1")
    labeler = get_user_model().objects.get(username="labeler")
    episodes = int(MINUTES * 60 / EPISODE_S)
    print(f"recording {episodes} episodes of {EPISODE_S:.0f} s at {FPS:.0f} fps (2 cameras)…", flush=True)
    frames = {camera: moving_frames(camera) for camera in ("head", "wrist_left")}
    started = time.monotonic()
    record_cpu = 0.0
    for index in range(episodes):
        spool, cpu = record(work / "agent", index, frames)
        record_cpu += cpu
        metadata = json.loads((spool / "metadata.json").read_text())
        directory = Path(settings.MEDIA_ROOT) / "uploads" / "r1" / metadata["episode"]
        directory.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(spool, directory)
        for camera in metadata["cameras"]:
            (directory / f"video_{camera}.mp4").rename(directory / f"{camera}.mp4")
        from datetime import datetime, timedelta

        begun = datetime.fromisoformat(metadata["started_at"].replace("Z", "+00:00"))
        episode = Episode.objects.create(id=metadata["episode"], robot=robot, station=robot.station, policy_version="bc-sim-v1",
                                         started_at=begun, ended_at=begun + timedelta(seconds=EPISODE_S), duration_s=EPISODE_S,
                                         outcome="failure", failure_mode="cross_threaded", intervened=True)
        upload = EpisodeUpload.objects.create(episode=episode, directory=str(directory.relative_to(settings.MEDIA_ROOT)),
                                              files={}, metadata=metadata)
        assert upload_process(str(upload.id)).state == "ready"
        label_submit(episode_id=str(episode.id), user=labeler, failure_mode="cross_threaded", failure_t=40.0, good_demo=True)
    prepared = time.monotonic() - started
    print(f"prepared in {prepared:.0f} s; exporting…", flush=True)
    export = export_create(user=labeler, format="lerobot_v3", review="labeled")
    started = time.monotonic()
    export = export_run(str(export.id))
    seconds = time.monotonic() - started
    assert export.state == "done", export.message
    count = int(MINUTES * 60 * FPS)
    shutil.rmtree(work, ignore_errors=True)
    metrics = {
        "seconds_per_hour": round(seconds * 60 / MINUTES, 1), "measured_minutes": MINUTES, "measured_seconds": round(seconds, 2),
        "frames_per_camera": count, "cameras": 2, "fps": FPS, "zip_mb": round(export.size / 1e6, 2),
        "frames_per_second": round(count * 2 / seconds, 1),
        # What recording at the control rate costs the robot's computer: CPU seconds of the agent's
        # recorder (downscale, H.264, step table, spool) per hour recorded, and as a share of one core.
        "record_cpu_seconds_per_hour": round(record_cpu * 60 / MINUTES, 1),
        "record_core_fraction": round(record_cpu / (MINUTES * 60), 3),
    }
    summary = [f"exported {MINUTES:g} min of 30 fps data (2 cameras) in {seconds:.1f} s → "
               f"{metrics['seconds_per_hour']} s per hour of data (goal ≤ 60)",
               f"recording it at 30 fps cost the agent {metrics['record_cpu_seconds_per_hour']} CPU s per hour "
               f"({metrics['record_core_fraction']:.1%} of a core)"]
    return finish("export", metrics, {"seconds_per_hour": "≤ 60"}, summary)
