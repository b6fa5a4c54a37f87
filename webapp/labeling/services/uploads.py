"""Storing what an agent uploads for one episode (POST /api/robot/episodes/{id}/upload): check the
request against the episode format (foreman_protocol/episodes.py), write the files under
MEDIA_ROOT/uploads/<robot>/<episode>/, create the EpisodeUpload (and the Episode, if the server
never saw the cycle) and queue processing (processing.py) once committed.

A refused upload stores nothing. Re-uploading is idempotent: the agent retries until it hears
`received` or `duplicate`.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import ClassVar

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from pydantic import ValidationError

from foreman_protocol.episodes import METADATA_FILE, STEPS_FILE, EpisodeMetadata
from foreman_protocol.messages import ErrorCode
from webapp.fleet.models import Episode, EpisodeUpload, Robot
from webapp.fleet.services.errors import ServiceError

log = logging.getLogger(__name__)


class UploadRefused(ServiceError):
    """Not an upload this robot may store; the agent parks it in spool/rejected/ (any 4xx)."""

    code: ClassVar[ErrorCode] = "bad_message"
    http_status = 400


class UploadTooLarge(UploadRefused):
    code = "too_large"
    http_status = 413


@dataclass(frozen=True)
class StoredUpload:
    episode: str
    upload: str
    state: str  # the upload's state, or "duplicate"


def upload_store(*, robot: Robot, episode_id: uuid.UUID, metadata: str, files: Mapping[str, UploadedFile]) -> StoredUpload:
    """`files`: "steps" and one "video_<camera>" per camera in the metadata."""
    limit = settings.FOREMAN_MAX_UPLOAD_MB * 1024 * 1024
    total = sum(f.size or 0 for f in files.values())
    if total > limit:
        raise UploadTooLarge(f"upload is {total} bytes; the limit is {limit}")
    try:
        meta = EpisodeMetadata.model_validate_json(metadata)
    except ValidationError as error:
        raise UploadRefused(f"metadata is not valid: {str(error)[:300]}") from None
    if meta.episode != episode_id:
        raise UploadRefused("metadata.episode does not match the URL")
    if "steps" not in files:
        raise UploadRefused("missing steps")
    videos = {key for key in files if key.startswith("video_")}
    missing = [f"video_{camera}" for camera in meta.cameras if f"video_{camera}" not in videos]
    if missing:
        raise UploadRefused(f"missing {missing[0]}")
    extra = videos - {f"video_{camera}" for camera in meta.cameras}
    if extra:
        raise UploadRefused(f"videos for undeclared cameras: {sorted(extra)}")
    existing = EpisodeUpload.objects.select_related("episode").filter(episode_id=episode_id).first()
    if existing is not None:
        if existing.episode.robot_id != robot.pk:
            raise UploadRefused("episode belongs to another robot")
        return StoredUpload(str(episode_id), str(existing.id), "duplicate")

    directory = Path(settings.MEDIA_ROOT) / "uploads" / robot.name / str(episode_id)
    partial = directory.with_name(directory.name + ".partial")  # the final name only ever holds whole uploads
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    stored: dict[str, str] = {}
    for key in ["steps", *sorted(videos)]:
        # Names are ours, never the client's: no path from the request reaches the disk (camera
        # names are checked by EpisodeMetadata).
        name = STEPS_FILE if key == "steps" else f"{key[len('video_'):]}.mp4"
        with open(partial / name, "wb") as out:
            for chunk in files[key].chunks():
                out.write(chunk)
        stored[key] = name
    (partial / METADATA_FILE).write_text(metadata)
    with transaction.atomic():
        episode = Episode.objects.filter(pk=episode_id).first()
        if episode is not None and episode.robot_id != robot.pk:
            shutil.rmtree(partial, ignore_errors=True)
            raise UploadRefused("episode belongs to another robot")
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
            metadata=meta.model_dump(mode="json"),
        )
        transaction.on_commit(lambda: _queue_processing(str(record.id)))
    return StoredUpload(str(episode_id), str(record.id), record.state)


def _queue_processing(upload_id: str) -> None:
    from webapp.labeling.tasks import process_upload

    try:
        process_upload.delay(upload_id)
    except Exception:  # the upload is stored; `manage.py process_uploads` catches up
        log.exception("could not queue processing of upload %s", upload_id)
