"""Robot-facing HTTP endpoints, /api/robot/...: a robot token (RobotBearer), never a user's login.

Robots talk to the server over the WebSocket (consumers.py); over HTTP they only upload recorded
episodes and download rolled-out policy checkpoints.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from django.conf import settings
from django.db import transaction
from django.http import FileResponse, HttpRequest
from ninja import File, Form, Router, Schema
from ninja.files import UploadedFile
from ninja.responses import Status

from webapp.fleet.api import ErrorOut
from webapp.fleet.api_auth import RobotBearer
from webapp.fleet.models import Episode, EpisodeUpload, PolicyVersion, Robot


class UploadOut(Schema):
    episode: str
    upload: str
    state: str


router = Router(auth=RobotBearer(), tags=["robot"])
# The operationIds these had before the robot endpoints left fleet/api.py, so generated clients keep them.
OPERATION_ID_PREFIX = "webapp_fleet_api_"
SAFE_CAMERA = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


class UploadMetadata(Schema):
    episode: uuid.UUID
    cycle_index: int = 0
    policy_version: str = ""
    seed: int | None = None
    started_at: datetime
    duration_s: float
    outcome: Literal["success", "failure", "aborted"]
    failure_mode: str | None = None
    intervened: bool = False
    fps: float
    cameras: list[str]
    steps: int


@router.post("/episodes/{episode_id}/upload", response={200: UploadOut, 400: ErrorOut, 413: ErrorOut}, url_name="robot_upload",
             operation_id=OPERATION_ID_PREFIX + "upload_episode")
def upload_episode(
    request: HttpRequest,
    episode_id: uuid.UUID,
    metadata: Form[str],
    steps: File[UploadedFile],
) -> Any:
    robot: Robot = request.auth  # type: ignore[attr-defined]
    limit = settings.FOREMAN_MAX_UPLOAD_MB * 1024 * 1024
    files = {"steps": steps, **{k: v for k, v in request.FILES.items() if k.startswith("video_")}}
    total = sum(f.size or 0 for f in files.values())
    if total > limit:
        return Status(413, {"detail": f"upload is {total} bytes; the limit is {limit}"})
    try:
        meta = UploadMetadata.model_validate(json.loads(metadata))
    except (ValueError, TypeError) as error:
        return Status(400, {"detail": f"metadata is not valid: {str(error)[:300]}"})
    if meta.episode != episode_id:
        return Status(400, {"detail": "metadata.episode does not match the URL"})
    for camera in meta.cameras:
        if not SAFE_CAMERA.match(camera):
            return Status(400, {"detail": f"bad camera name {camera!r}"})
        if f"video_{camera}" not in files:
            return Status(400, {"detail": f"missing video_{camera}"})
    extra = {k for k in files if k.startswith("video_")} - {f"video_{c}" for c in meta.cameras}
    if extra:
        return Status(400, {"detail": f"videos for undeclared cameras: {sorted(extra)}"})
    existing = EpisodeUpload.objects.filter(episode_id=episode_id).first()
    if existing is not None:
        if existing.episode.robot_id != robot.pk:
            return Status(400, {"detail": "episode belongs to another robot"})
        return {"episode": str(episode_id), "upload": str(existing.id), "state": "duplicate"}
    directory = Path(settings.MEDIA_ROOT) / "uploads" / robot.name / str(episode_id)
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    stored: dict[str, str] = {}
    for key, upload in files.items():
        # Names are ours, never the client's: no path from the request reaches the disk.
        name = "steps.parquet" if key == "steps" else f"{key[len('video_'):]}.mp4"
        with open(partial / name, "wb") as out:
            for chunk in upload.chunks():
                out.write(chunk)
        stored[key] = name
    (partial / "metadata.json").write_text(metadata)
    with transaction.atomic():
        episode = Episode.objects.filter(pk=episode_id).first()
        if episode is not None and episode.robot_id != robot.pk:
            shutil.rmtree(partial, ignore_errors=True)
            return Status(400, {"detail": "episode belongs to another robot"})
        if episode is None:
            # Recorded while the server was away: the upload is the only record of the cycle.
            episode = Episode.objects.create(
                id=episode_id, robot=robot, station=robot.station, policy_version=meta.policy_version,
                cycle_index=meta.cycle_index, seed=meta.seed, started_at=meta.started_at,
            )
        if episode.outcome == Episode.Outcome.RUNNING:
            episode.outcome = meta.outcome
            episode.failure_mode = meta.failure_mode or ""
            episode.duration_s = meta.duration_s
            episode.ended_at = episode.started_at + timedelta(seconds=meta.duration_s)
        episode.intervened = episode.intervened or meta.intervened
        episode.save()
        shutil.rmtree(directory, ignore_errors=True)
        partial.rename(directory)
        record = EpisodeUpload.objects.create(
            episode=episode, directory=str(directory.relative_to(settings.MEDIA_ROOT)), files=stored,
            metadata=json.loads(metadata),
        )
        transaction.on_commit(lambda: _queue_processing(str(record.id)))
    return {"episode": str(episode_id), "upload": str(record.id), "state": record.state}


def _queue_processing(upload_id: str) -> None:
    from webapp.labeling.tasks import process_upload

    try:
        process_upload.delay(upload_id)
    except Exception:  # noqa: BLE001 - the upload is stored; `manage.py process_uploads` catches up
        import logging

        logging.getLogger(__name__).exception("could not queue processing of upload %s", upload_id)


@router.get("/policies/{version}", response={200: None, 404: ErrorOut}, url_name="robot_policy",
            operation_id=OPERATION_ID_PREFIX + "download_policy")
def download_policy(request: HttpRequest, version: str) -> Any:
    """The checkpoint of a rolled-out policy; the agent checks it against the rollout's sha256."""
    policy = PolicyVersion.objects.filter(name=version).exclude(checkpoint="").first()
    if policy is None:
        return Status(404, {"detail": f"no checkpoint for policy {version!r}"})
    root = Path(settings.MEDIA_ROOT).resolve()
    path = (root / policy.checkpoint).resolve()
    if root not in path.parents or not path.is_file():
        return Status(404, {"detail": f"the checkpoint of {version!r} is missing on the server"})
    response = FileResponse(open(path, "rb"), content_type="application/octet-stream", as_attachment=True, filename=path.name)
    response["X-Checkpoint-SHA256"] = policy.sha256
    return response
