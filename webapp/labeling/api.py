"""HTTP endpoints for the labeling queue, clips and labels, mounted at /api/labeling/ (webapp/api.py).

Every operation here needs an entry in tests/labeling/api_permissions.py (the permission matrix).
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

from django.conf import settings
from django.db.models import Q
from django.http import FileResponse, HttpRequest, HttpResponse
from ninja import Router, Schema
from ninja.errors import HttpError
from pydantic import Field

from webapp.fleet.api_auth import require
from webapp.fleet.models import Episode, Intervention
from webapp.fleet.paging import Offset
from webapp.fleet.selectors import iso
from webapp.labeling.models import Clip, Label, QueueItem
from webapp.labeling.services.labels import episode_taxonomy, label_review, label_submit, queue_assign

router = Router(tags=["labeling"])
RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _source(request: HttpRequest) -> str:
    return f"http {request.META.get('REMOTE_ADDR', '?')}"


def media_url(episode_id: Any, name: str | None) -> str | None:
    return f"/api/labeling/episodes/{episode_id}/media/{name}" if name else None


def label_dict(label: Label | None) -> dict[str, Any] | None:
    if label is None:
        return None
    return {
        "id": str(label.id), "author": label.author.username, "created_at": iso(label.created_at), "current": label.current,
        "failure_mode": label.failure_mode or None, "failure_t": label.failure_t, "good_demo": label.good_demo,
        "other_text": label.other_text, "notes": label.notes, "review": label.review,
        "reviewer": label.reviewer.username if label.reviewer else None, "reviewed_at": iso(label.reviewed_at),
        "review_note": label.review_note,
    }


def queue_row(item: QueueItem, current: dict[str, Label]) -> dict[str, Any]:
    episode = item.episode
    clip: Clip | None = getattr(episode, "clip", None)
    head = None
    if clip is not None and clip.videos:
        first = clip.videos.get("head") or next(iter(clip.videos.values()))
        head = media_url(episode.id, first.get("thumbnail"))
    return {
        "episode": str(episode.id), "robot": episode.robot.name, "station": episode.station.name if episode.station else None,
        "policy_version": episode.policy_version or None, "outcome": episode.outcome,
        "robot_failure_mode": episode.failure_mode or None, "trigger": item.trigger or None, "state": item.state,
        "assigned_to": item.assigned_to.username if item.assigned_to else None, "started_at": iso(episode.started_at),
        "duration_s": episode.duration_s, "thumbnail": head, "label": label_dict(current.get(str(episode.id))),
        "human_steps": (clip.timeline.get("step_counts", {}).get("human", 0) if clip else 0),
    }


@router.get("/queue")
def list_queue(
    request: HttpRequest,
    state: Literal["open", "labeled", "confirmed", "disputed", "todo", "all"] = "todo",
    station: str | None = None,
    robot: str | None = None,
    policy: str | None = None,
    trigger: str | None = None,
    failure_mode: str | None = None,
    assigned: str | None = None,
    limit: int = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Episodes waiting for a label (`todo` = open or disputed), oldest first, with filters."""
    user = require(request, "episodes")
    items = QueueItem.objects.select_related("episode__robot", "episode__station", "episode__clip", "assigned_to")
    if state == "todo":
        items = items.filter(state__in=[QueueItem.State.OPEN, QueueItem.State.DISPUTED])
    elif state != "all":
        items = items.filter(state=state)
    if station:
        items = items.filter(episode__station__name=station)
    if robot:
        items = items.filter(episode__robot__name=robot)
    if policy:
        items = items.filter(episode__policy_version=policy)
    if trigger:
        items = items.filter(trigger=trigger)
    if failure_mode:
        labeled = Label.objects.filter(current=True, failure_mode=failure_mode).values("episode_id")
        items = items.filter(Q(episode__failure_mode=failure_mode) | Q(episode_id__in=labeled))
    if assigned == "me":
        items = items.filter(assigned_to=user)
    elif assigned == "none":
        items = items.filter(assigned_to__isnull=True)
    elif assigned:
        items = items.filter(assigned_to__username=assigned)
    limit = max(1, min(limit, 200))
    total = items.count()
    page = list(items.order_by("created_at")[offset: offset + limit])
    current = {str(label.episode_id): label for label in Label.objects.select_related("author", "reviewer")
               .filter(current=True, episode_id__in=[i.episode_id for i in page])}
    counts = {s: QueueItem.objects.filter(state=s).count() for s in QueueItem.State.values}
    return {"total": total, "counts": counts, "items": [queue_row(i, current) for i in page]}


@router.get("/episodes/{episode_id}")
def get_episode(request: HttpRequest, episode_id: uuid.UUID) -> dict[str, Any]:
    """One episode as a clip: videos, timeline, interventions, labels (newest first), the station's taxonomy."""
    require(request, "episodes")
    episode = Episode.objects.select_related("robot", "station").filter(pk=episode_id).first()
    if episode is None:
        raise HttpError(404, f"no episode {episode_id}")
    clip: Clip | None = Clip.objects.filter(episode=episode).first()
    upload = getattr(episode, "upload", None)
    item = QueueItem.objects.select_related("assigned_to").filter(episode=episode).first()
    return {
        "episode": str(episode.id), "robot": episode.robot.name, "station": episode.station.name if episode.station else None,
        "policy_version": episode.policy_version or None, "cycle_index": episode.cycle_index, "seed": episode.seed,
        "started_at": iso(episode.started_at), "duration_s": episode.duration_s, "outcome": episode.outcome,
        "robot_failure_mode": episode.failure_mode or None, "intervened": episode.intervened,
        "upload": {"state": upload.state, "reason": upload.reason} if upload else None,
        "clip": None if clip is None else {
            "fps": clip.fps, "duration_s": clip.duration_s, "timeline": clip.timeline,
            "videos": {camera: {**info, "url": media_url(episode.id, info["file"]), "thumbnail": media_url(episode.id, info.get("thumbnail"))}
                       for camera, info in clip.videos.items()},
            # The robot's own camera order (its first is its main view); a stored JSON object keeps none.
            "cameras": [c for c in episode.robot.cameras if c in clip.videos] + sorted(set(clip.videos) - set(episode.robot.cameras)),
        },
        "interventions": [{"id": str(i.id), "trigger": i.trigger, "severity": i.severity, "detail": i.detail, "raised_at": iso(i.raised_at),
                           "claimed_by": i.claimed_by.username if i.claimed_by else None}
                          for i in Intervention.objects.select_related("claimed_by").filter(episode=episode).order_by("raised_at")],
        "queue": None if item is None else {"state": item.state, "assigned_to": item.assigned_to.username if item.assigned_to else None,
                                            "trigger": item.trigger or None},
        "labels": [label_dict(label) for label in Label.objects.select_related("author", "reviewer").filter(episode=episode)],
        "taxonomy": [{"key": m.key, "label": m.label, "needs_text": m.needs_text} for m in episode_taxonomy(episode)],
    }


@router.get("/episodes/{episode_id}/media/{name}")
def get_media(request: HttpRequest, episode_id: uuid.UUID, name: str) -> HttpResponse:
    """A clip's video or thumbnail, with byte ranges (players seek with them)."""
    require(request, "episodes")
    clip = Clip.objects.select_related("upload").filter(episode_id=episode_id).first()
    allowed = {n for info in (clip.videos.values() if clip else []) for n in (info.get("file"), info.get("thumbnail")) if n}
    if clip is None or name not in allowed:  # only names the processing wrote; never a path from the request
        raise HttpError(404, "no such file")
    path = Path(settings.MEDIA_ROOT) / clip.upload.directory / name
    if not path.is_file():
        raise HttpError(404, "no such file")
    return ranged_file(request, path, "video/mp4" if name.endswith(".mp4") else "image/jpeg")


def ranged_file(request: HttpRequest, path: Path, content_type: str) -> HttpResponse:
    size = path.stat().st_size
    match = RANGE.match(request.headers.get("Range", "").strip())
    if not match or (not match.group(1) and not match.group(2)):
        response: HttpResponse = FileResponse(open(path, "rb"), content_type=content_type)
        response["Accept-Ranges"] = "bytes"
        return response
    start_text, end_text = match.groups()
    if start_text:
        start, end = int(start_text), min(int(end_text) if end_text else size - 1, size - 1)
    else:  # the last N bytes
        start, end = max(0, size - int(end_text)), size - 1
    if start > end or start >= size:
        refused = HttpResponse(status=416)
        refused["Content-Range"] = f"bytes */{size}"
        return refused
    with open(path, "rb") as handle:
        handle.seek(start)
        body = handle.read(end - start + 1)
    partial = HttpResponse(body, status=206, content_type=content_type)
    partial["Content-Range"] = f"bytes {start}-{end}/{size}"
    partial["Accept-Ranges"] = "bytes"
    return partial


class LabelIn(Schema):
    failure_mode: str = ""
    failure_t: float | None = None
    good_demo: bool | None = None
    other_text: str = ""
    notes: str = ""


@router.post("/episodes/{episode_id}/labels")
def post_label(request: HttpRequest, episode_id: uuid.UUID, body: LabelIn) -> dict[str, Any]:
    """Label an episode; a new version replaces the current one (history is kept)."""
    user = require(request, "label")
    label = label_submit(episode_id=str(episode_id), user=user, failure_mode=body.failure_mode, failure_t=body.failure_t,
                         good_demo=body.good_demo, other_text=body.other_text, notes=body.notes, source=_source(request))
    return label_dict(label) or {}


class ReviewIn(Schema):
    verdict: Literal["confirm", "dispute"]
    note: str = ""


@router.post("/labels/{label_id}/review")
def post_review(request: HttpRequest, label_id: uuid.UUID, body: ReviewIn) -> dict[str, Any]:
    """A second reviewer confirms or disputes the current label."""
    user = require(request, "label")
    return label_dict(label_review(label_id=str(label_id), user=user, verdict=body.verdict, note=body.note, source=_source(request))) or {}


class AssignIn(Schema):
    assignee: str | None = None


@router.post("/episodes/{episode_id}/assign")
def post_assign(request: HttpRequest, episode_id: uuid.UUID, body: AssignIn) -> dict[str, Any]:
    """Assign a queued episode to a labeler (null: unassign)."""
    user = require(request, "label")
    item = queue_assign(episode_id=str(episode_id), user=user, assignee=body.assignee, source=_source(request))
    return {"episode": str(episode_id), "assigned_to": item.assigned_to.username if item.assigned_to else None}


class ExportIn(Schema):
    format: Literal["lerobot_v3", "xr0"]
    episodes: list[uuid.UUID] | None = None
    review: Literal["confirmed", "labeled"] = "confirmed"
    station: str | None = None
    robot: str | None = None
    policy: str | None = None
    fps: Annotated[float, Field(gt=0, le=120)] | None = None  # LeRobot: rows at this rate (it must divide the recording's)


@router.post("/exports")
def post_export(request: HttpRequest, body: ExportIn) -> dict[str, Any]:
    """Start an export of labeled episodes (chosen ids, or all matching the filters); runs in Celery."""
    from django.db import transaction

    from webapp.labeling.services.exports import export_create, export_dict
    from webapp.labeling.tasks import run_export

    user = require(request, "label")
    export = export_create(user=user, format=body.format, episode_ids=[str(e) for e in body.episodes] if body.episodes else None,
                           review=body.review, station=body.station, robot=body.robot, policy=body.policy, fps=body.fps,
                           source=_source(request))
    transaction.on_commit(lambda: run_export.delay(str(export.id)))
    return export_dict(export)


@router.get("/exports")
def list_exports(request: HttpRequest, limit: int = 20) -> list[dict[str, Any]]:
    from webapp.labeling.models import Export
    from webapp.labeling.services.exports import export_dict

    require(request, "label")
    return [export_dict(e) for e in Export.objects.select_related("created_by")[: max(1, min(limit, 100))]]


@router.get("/exports/{export_id}")
def get_export(request: HttpRequest, export_id: uuid.UUID) -> dict[str, Any]:
    from webapp.labeling.models import Export
    from webapp.labeling.services.exports import export_dict

    require(request, "label")
    export = Export.objects.select_related("created_by").filter(pk=export_id).first()
    if export is None:
        raise HttpError(404, f"no export {export_id}")
    return export_dict(export)


@router.get("/exports/{export_id}/download")
def download_export(request: HttpRequest, export_id: uuid.UUID) -> HttpResponse:
    from webapp.labeling.models import Export

    require(request, "label")
    export = Export.objects.filter(pk=export_id, state=Export.State.DONE).first()
    if export is None:
        raise HttpError(404, "no finished export with this id")
    path = Path(settings.MEDIA_ROOT) / export.file
    if not path.is_file():
        raise HttpError(404, "the export's file is gone")
    response = ranged_file(request, path, "application/zip")
    response["Content-Disposition"] = f'attachment; filename="foreman-{export.format}-{str(export.id)[:8]}.zip"'
    return response
