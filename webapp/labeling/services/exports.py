"""Dataset exports: choose labeled episodes, write LeRobotDataset v3.0 or XR0's format, zip it.

Deterministic: the same selection gives the same bytes (episodes in a fixed order, one-thread
H.264, sorted JSON, zip entries sorted with a fixed date). Progress is saved as the work goes, so
the page can show a bar.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from foreman_protocol.episodes import STEPS_FILE
from webapp.fleet.models import ControlSession, Episode
from webapp.fleet.roles import user_can
from webapp.fleet.selectors import iso
from webapp.fleet.services.audit import audit_record
from webapp.fleet.services.errors import Forbidden, Invalid
from webapp.labeling.models import Clip, Export, Label
from webapp.labeling.services import lerobot, xr0

MAX_EPISODES = 5000
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def exportable_episodes(*, review: str = "confirmed", station: str | None = None, robot: str | None = None,
                        policy: str | None = None) -> QuerySet[Episode]:
    """Episodes with a processed clip and a current label (confirmed only, or any not disputed)."""
    labels = Label.objects.filter(current=True)
    labels = labels.filter(review=Label.Review.CONFIRMED) if review == "confirmed" else labels.exclude(review=Label.Review.DISPUTED)
    items = Episode.objects.filter(id__in=labels.values("episode_id"), clip__isnull=False)
    if station:
        items = items.filter(station__name=station)
    if robot:
        items = items.filter(robot__name=robot)
    if policy:
        items = items.filter(policy_version=policy)
    return items.order_by("started_at", "id")


def export_create(*, user: Any, format: str, episode_ids: list[str] | None = None, review: str = "confirmed",
                  station: str | None = None, robot: str | None = None, policy: str | None = None, fps: float | None = None,
                  source: str = "") -> Export:
    """An export of the chosen labeled episodes, queued. `fps`: a LeRobot dataset's rate when lower
    than the recording's (it must divide it); None: rows at the rate the episodes were recorded."""
    if not user_can(user, "label"):
        raise Forbidden("your role may not export datasets (label)")
    if format not in Export.Format.values:
        raise Invalid(f"format must be one of {', '.join(Export.Format.values)}")
    chosen = exportable_episodes(review=review, station=station, robot=robot, policy=policy)
    if episode_ids:
        chosen = chosen.filter(id__in=episode_ids)
    ids = [str(i) for i in chosen.values_list("id", flat=True)[: MAX_EPISODES + 1]]
    if not ids:
        raise Invalid("no labeled episodes match this selection (a clip and a current, undisputed label are needed)")
    if len(ids) > MAX_EPISODES:
        raise Invalid(f"more than {MAX_EPISODES} episodes: narrow the selection")
    if episode_ids and len(ids) != len(set(episode_ids)):
        missing = sorted(set(episode_ids) - set(ids))
        raise Invalid(f"{len(missing)} of the chosen episodes cannot be exported (no clip or no usable label), e.g. {missing[0]}")
    if fps is not None:
        if format != Export.Format.LEROBOT_V3:
            raise Invalid("a frame rate is an option of LeRobot exports (XR0 keeps the recording's)")
        for recorded in sorted(set(Clip.objects.filter(episode_id__in=ids).values_list("fps", flat=True))):
            try:
                lerobot.rate_step(recorded, fps)
            except ValueError as error:
                raise Invalid(str(error)) from None
    export = Export.objects.create(created_by=user, format=format, episodes=ids,
                                   filters={"review": review, "station": station, "robot": robot, "policy": policy, "fps": fps})
    audit_record(actor=user.username, action="export_created", robot=None, source=source, export=str(export.id),
                 format=format, episodes=len(ids))
    return export


def _declaration(clip: Clip) -> dict[str, Any]:
    """The robot type and feature names the episode was recorded with (its metadata.json). An upload
    from before the agents sent them has none: the export then names nothing rather than guess."""
    metadata = clip.upload.metadata or {}
    features = metadata.get("features") or {}
    names = lambda key: [f["name"] for f in features[key]] if features.get(key) is not None else None  # noqa: E731
    return {"robot_type": metadata.get("robot_type") or "", "state": names("state") if features else None,
            "action": names("action") if features else None}


def _leases(sources: list[lerobot.EpisodeSource]) -> dict[str, dict[str, Any]]:
    """Who held each lease the episodes' steps were driven under, as the server recorded it."""
    ids = {lease for source in sources for lease in lerobot.lease_ids(source.steps)}  # uuids: processing checked them
    return {str(session.id): {"operator": session.user.username, "mode": session.mode, "started_at": iso(session.started_at),
                              "ended_at": iso(session.ended_at)}
            for session in ControlSession.objects.select_related("user").filter(id__in=ids)}


def _sources(export: Export) -> tuple[list[lerobot.EpisodeSource], dict[str, str]]:
    clips = {str(c.episode_id): c for c in Clip.objects.select_related("upload", "episode__station", "episode__robot")
             .filter(episode_id__in=export.episodes)}
    labels = {str(label.episode_id): label for label in Label.objects.filter(current=True, episode_id__in=export.episodes)}
    sources, started = [], {}
    for key in export.episodes:
        clip = clips.get(key)
        if clip is None:
            raise Invalid(f"episode {key} has no clip any more")
        episode = clip.episode
        directory = Path(settings.MEDIA_ROOT) / clip.upload.directory
        label = labels.get(key)
        declared = _declaration(clip)
        sources.append(lerobot.EpisodeSource(
            key=key, task=(episode.station.task if episode.station else "") or "unspecified task",
            fps=clip.fps, steps=pq.read_table(directory / STEPS_FILE),
            videos={camera: directory / info["file"] for camera, info in sorted(clip.videos.items())},
            success=episode.outcome == Episode.Outcome.SUCCESS, failure_mode=label.failure_mode if label else "",
            failure_t=label.failure_t if label else None, good_demo=label.good_demo if label else None,
            robot=episode.robot.name, policy_version=episode.policy_version,
            robot_type=declared["robot_type"], state_names=declared["state"], action_names=declared["action"],
        ))
        started[key] = iso(episode.started_at) or ""
    return sources, started


def zip_directory(directory: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(str(path.relative_to(directory)), date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED if path.suffix == ".mp4" else zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())


def export_run(export_id: str) -> Export:
    export = Export.objects.get(pk=export_id)
    if export.state == Export.State.DONE:
        return export
    export.state, export.progress, export.message = Export.State.RUNNING, 0.0, "starting"
    export.save(update_fields=["state", "progress", "message"])

    def progress(fraction: float, message: str) -> None:
        Export.objects.filter(pk=export.pk).update(progress=round(min(0.95, fraction * 0.95), 3), message=message[:500])

    work = Path(tempfile.mkdtemp(prefix="foreman-export-"))
    try:
        sources, started = _sources(export)
        root = work / f"foreman-{export.format}"
        if export.format == Export.Format.LEROBOT_V3:
            lerobot.write_dataset(sources, root, leases=_leases(sources), fps=export.filters.get("fps"), progress=progress)
        else:
            xr0.write_episodes(sources, root, started=started, progress=progress)
        target = Path(settings.MEDIA_ROOT) / "exports" / f"{export.id}.zip"
        zip_directory(root, target)
        digest = hashlib.sha256(target.read_bytes()).hexdigest()
        export.state, export.progress, export.message = Export.State.DONE, 1.0, f"{len(sources)} episodes"
        export.file, export.size, export.sha256 = str(target.relative_to(settings.MEDIA_ROOT)), target.stat().st_size, digest
    except Exception as error:  # noqa: BLE001 - a failed export says why and keeps nothing half-written
        export.state, export.message = Export.State.FAILED, f"{type(error).__name__}: {error}"[:500]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    export.finished_at = timezone.now()
    export.save()
    return export


def export_dict(export: Export) -> dict[str, Any]:
    return {
        "id": str(export.id), "format": export.format, "state": export.state, "progress": export.progress,
        "message": export.message, "episodes": len(export.episodes), "created_by": export.created_by.username,
        "created_at": iso(export.created_at), "finished_at": iso(export.finished_at), "size": export.size,
        "sha256": export.sha256 or None, "filters": export.filters,
        "download": f"/api/labeling/exports/{export.id}/download" if export.state == Export.State.DONE else None,
    }
