"""Upload processing: validate what an agent uploaded, make thumbnails, read durations, build the
per-step timeline, and queue the episode for labeling. An upload that fails any check is
rejected with a clear reason and left on disk for inspection; nothing of it is imported. What an
upload must be is foreman_protocol.episodes.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from django.conf import settings
from django.db import transaction
from pydantic import ValidationError

from foreman_protocol.episodes import (
    ACTION_MODES,
    HUMAN_ACTION_MODES,
    MAX_STEPS,
    METADATA_FILE,
    STEPS_FILE,
    EpisodeMetadata,
    step_schema_problem,
)
from webapp.fleet.models import Episode, EpisodeUpload, Intervention
from webapp.fleet.services.audit import audit_record
from webapp.labeling.models import Clip, QueueItem

log = logging.getLogger(__name__)

MAX_PIXELS = 1920 * 1080
MAX_FRAMES = 300 * 60
ALLOWED_CODECS = {"h264"}
MAX_LEASES = 1000  # leases one cycle's steps were driven under (a takeover and hand-back is one)
LEASE_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
CURVE_POINTS = 400
THUMB_SIZE = (160, 120)


class UploadRejected(Exception):
    """The upload is not what an agent sends; the message says why."""


@dataclass(frozen=True)
class VideoFacts:
    frames: int
    width: int
    height: int
    codec: str
    duration_s: float
    thumbnail_frame: av.VideoFrame | None = None  # the first frame at or after the asked moment, else the last


# ---------------------------------------------------------------- checks


def read_steps(path: Path, expected: int) -> pa.Table:
    try:
        schema = pq.read_schema(path)
    except Exception as error:  # noqa: BLE001 - any unreadable file is a rejection
        raise UploadRejected(f"{STEPS_FILE} is not a readable parquet file ({type(error).__name__})") from None
    problem = step_schema_problem(schema)
    if problem is not None:
        raise UploadRejected(f"{STEPS_FILE}: {problem}")
    rows = pq.ParquetFile(path).metadata.num_rows
    if rows > MAX_STEPS:
        raise UploadRejected(f"steps.parquet has {rows} rows (at most {MAX_STEPS})")
    if rows != expected:
        raise UploadRejected(f"steps.parquet has {rows} rows but the metadata says {expected} steps")
    table = pq.read_table(path)
    t = table.column("t").to_numpy(zero_copy_only=False)
    if rows and (not np.all(np.isfinite(t)) or np.any(np.diff(t) < 0)):
        raise UploadRejected("steps.parquet: t must be finite and never go back")
    modes = set(table.column("action_mode").to_pylist())
    if not modes <= set(ACTION_MODES):
        raise UploadRejected(f"steps.parquet: unknown action_mode {sorted(modes - set(ACTION_MODES))[:3]}")
    if "lease_id" in table.column_names:
        leases = {lease for lease in table.column("lease_id").unique().to_pylist() if lease is not None}
        if len(leases) > MAX_LEASES or any(not LEASE_ID.match(lease) for lease in leases):
            raise UploadRejected(f"steps.parquet: lease_id must name at most {MAX_LEASES} leases by their ids (uuids)")
    return table


def probe_video(path: Path, fps: float, thumbnail_at_s: float | None = None) -> VideoFacts:
    """Open and fully decode (bounded): a truncated or mislabelled file fails here, not in a player.
    The frame for a thumbnail at `thumbnail_at_s` is kept on the way (one decode, not two)."""
    try:
        with av.open(str(path)) as container:
            if len(container.streams.video) != 1 or container.streams.audio:
                raise UploadRejected(f"{path.name}: expected exactly one video stream and no audio")
            stream = container.streams.video[0]
            codec = stream.codec_context.name
            if codec not in ALLOWED_CODECS:
                raise UploadRejected(f"{path.name}: codec {codec} (expected {', '.join(sorted(ALLOWED_CODECS))})")
            width, height = stream.codec_context.width, stream.codec_context.height
            if not 0 < width * height <= MAX_PIXELS:
                raise UploadRejected(f"{path.name}: {width}×{height} is not a size the agent records")
            frames, chosen, chosen_final = 0, None, False
            for frame in container.decode(stream):
                frames += 1
                if thumbnail_at_s is not None and not chosen_final:
                    chosen = frame
                    chosen_final = frame.time is not None and frame.time >= thumbnail_at_s
                if frames > MAX_FRAMES:
                    raise UploadRejected(f"{path.name}: more than {MAX_FRAMES} frames")
    except UploadRejected:
        raise
    except Exception as error:  # noqa: BLE001 - corrupt, truncated or not a video at all
        raise UploadRejected(f"{path.name}: not a playable video ({type(error).__name__}: {str(error)[:120]})") from None
    if frames == 0:
        raise UploadRejected(f"{path.name}: no frames")
    return VideoFacts(frames=frames, width=width, height=height, codec=codec, duration_s=frames / fps,
                      thumbnail_frame=chosen)


def write_thumbnail(frame: av.VideoFrame, out: Path) -> None:
    """A small JPEG of `frame` (PyAV's MJPEG encoder; no image library needed)."""
    image = frame.reformat(width=THUMB_SIZE[0], height=THUMB_SIZE[1], format="yuvj420p")
    with av.open(str(out), mode="w", format="image2") as container:
        stream = container.add_stream("mjpeg", rate=Fraction(1, 1))
        stream.width, stream.height = THUMB_SIZE
        stream.pix_fmt = "yuvj420p"
        image.pts = 0
        for packet in stream.encode(image):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


# ---------------------------------------------------------------- timeline


def runs(values: list[str], times: np.ndarray, end: float) -> list[dict[str, Any]]:
    """Consecutive equal values as [{start, end, value}] (times relative to the episode)."""
    out: list[dict[str, Any]] = []
    for index, value in enumerate(values):
        if out and out[-1]["value"] == value:
            continue
        if out:
            out[-1]["end"] = round(float(times[index]), 3)
        out.append({"start": round(float(times[index]), 3), "end": None, "value": value})
    if out:
        out[-1]["end"] = round(end, 3)
    return out


def curve(times: np.ndarray, values: list[float | None]) -> list[list[float | None]]:
    """At most CURVE_POINTS [t, value] pairs (evenly picked), gaps kept as None."""
    if not len(values):
        return []
    picks = np.unique(np.linspace(0, len(values) - 1, min(CURVE_POINTS, len(values))).round().astype(int))
    return [[round(float(times[i]), 3), None if values[i] is None or not math.isfinite(values[i]) else round(float(values[i]), 4)]
            for i in picks]


def build_timeline(table: pa.Table, episode: Episode, duration_s: float) -> dict[str, Any]:
    t_abs = table.column("t").to_numpy(zero_copy_only=False).astype(np.float64)
    times = t_abs - t_abs[0] if len(t_abs) else t_abs
    end = max(duration_s, float(times[-1]) if len(times) else 0.0)
    modes = table.column("action_mode").to_pylist()
    counts = {mode: modes.count(mode) for mode in ACTION_MODES}
    markers: list[dict[str, Any]] = []
    for item in Intervention.objects.filter(episode=episode).order_by("raised_at"):
        markers.append({"t": round(max(0.0, (item.raised_at - episode.started_at).total_seconds()), 3), "kind": "intervention",
                        "label": f"{item.trigger}: {item.detail}"[:200]})
    first_human = next((i for i, m in enumerate(modes) if m in HUMAN_ACTION_MODES), None)
    if first_human is not None:
        markers.append({"t": round(float(times[first_human]), 3), "kind": "takeover", "label": "a person took control"})
    torque = table.column("torque_nm").to_pylist()
    if episode.outcome in (Episode.Outcome.FAILURE, Episode.Outcome.ABORTED):
        markers.append({"t": round(end, 3), "kind": "end", "label": f"{episode.outcome}: {episode.failure_mode or '—'}"})
    return {
        "duration_s": round(end, 3),
        "steps": len(modes),
        "step_counts": counts,
        "segments": [{"start": r["start"], "end": r["end"], "mode": r["value"]} for r in runs(modes, times, end)],
        "phases": [{"start": r["start"], "end": r["end"], "phase": r["value"]} for r in runs(table.column("phase").to_pylist(), times, end)],
        "confidence": curve(times, table.column("confidence").to_pylist()),
        "torque": curve(times, torque),
        "markers": sorted(markers, key=lambda m: m["t"]),
    }


# ---------------------------------------------------------------- the service


def upload_process(upload_id: str) -> EpisodeUpload:
    """Check, describe and queue one upload. Idempotent: a processed upload is left as it is."""
    with transaction.atomic():
        upload = EpisodeUpload.objects.select_for_update().select_related("episode", "episode__robot").get(pk=upload_id)
        if upload.state in (EpisodeUpload.State.READY, EpisodeUpload.State.REJECTED):
            return upload
        upload.state = EpisodeUpload.State.PROCESSING
        upload.save(update_fields=["state"])
    directory = Path(settings.MEDIA_ROOT) / upload.directory
    try:
        clip_fields = _check_and_describe(upload, directory)
    except UploadRejected as error:
        upload.state, upload.reason = EpisodeUpload.State.REJECTED, str(error)[:500]
        upload.save(update_fields=["state", "reason"])
        audit_record(actor="system", action="upload_rejected", robot=upload.episode.robot, episode=str(upload.episode_id),
                     reason=upload.reason)
        log.warning("upload %s rejected: %s", upload.id, upload.reason)
        return upload
    with transaction.atomic():
        Clip.objects.update_or_create(upload=upload, defaults={"episode": upload.episode, **clip_fields})
        episode = upload.episode
        if episode.outcome != Episode.Outcome.SUCCESS or episode.intervened:
            first = Intervention.objects.filter(episode=episode).order_by("raised_at").first()
            QueueItem.objects.get_or_create(episode=episode, defaults={"trigger": first.trigger if first else ""})
        upload.state, upload.reason = EpisodeUpload.State.READY, ""
        upload.save(update_fields=["state", "reason"])
    return upload


def _check_and_describe(upload: EpisodeUpload, directory: Path) -> dict[str, Any]:
    try:
        metadata = EpisodeMetadata.model_validate_json((directory / METADATA_FILE).read_text())
    except OSError as error:
        raise UploadRejected(f"{METADATA_FILE} is missing ({type(error).__name__})") from None
    except ValidationError as error:
        raise UploadRejected(f"{METADATA_FILE} is not valid: {str(error)[:300]}") from None
    fps = metadata.fps
    table = read_steps(directory / STEPS_FILE, metadata.steps)
    if metadata.features is not None:
        # The declaration names the step table's columns: a table of another width is not its robot's.
        for column, declared in (("state", metadata.features.state), ("action", metadata.features.action)):
            wrong = set(pc.unique(pc.list_value_length(table.column(column))).to_pylist()) - {len(declared)}
            if wrong:
                raise UploadRejected(f"steps.parquet: {column} has {min(w or 0 for w in wrong)} numbers per step, "
                                     f"the robot declares {len(declared)} {column} features")
    t = table.column("t").to_numpy(zero_copy_only=False)
    steps_span = float(t[-1] - t[0]) if len(t) else 0.0
    episode = upload.episode
    duration = float(episode.duration_s or metadata.duration_s or steps_span)
    timeline = build_timeline(table, episode, duration)
    # Thumbnails where the story is: the first intervention or takeover, else the end of the clip.
    moments = [m["t"] for m in timeline["markers"] if m["kind"] in ("intervention", "takeover")]
    at = min(moments) if moments else max(0.0, timeline["duration_s"] - 1.0)
    videos: dict[str, Any] = {}
    for camera in metadata.cameras:
        path = directory / f"{camera}.mp4"
        if not path.is_file():
            raise UploadRejected(f"video for camera {camera!r} is missing")
        facts = probe_video(path, fps, thumbnail_at_s=at)
        # The step table and each video cover the same stretch of the cycle (both are bounded
        # to the agent's last max_seconds); a mismatch means files from different episodes. A video
        # sampled at fps can miss up to a frame interval at either end (a sped-up sim records few
        # frames per robot second).
        if abs(facts.duration_s - steps_span) > max(2.0, 0.1 * steps_span, 2.0 / fps):
            raise UploadRejected(f"{camera}.mp4 lasts {facts.duration_s:.1f} s but the step table spans {steps_span:.1f} s")
        videos[camera] = {"file": path.name, "frames": facts.frames, "width": facts.width, "height": facts.height,
                          "codec": facts.codec, "duration_s": round(facts.duration_s, 3), "thumbnail": None}
        if facts.thumbnail_frame is not None:
            write_thumbnail(facts.thumbnail_frame, directory / f"thumb_{camera}.jpg")
            videos[camera]["thumbnail"] = f"thumb_{camera}.jpg"
    return {"duration_s": timeline["duration_s"], "fps": fps, "videos": videos, "timeline": timeline}
