"""Episode recording: every cycle is an episode (uuid, cycle_started/cycle_ended).

Per control step: t, phase, mode, action_mode (robot / pre_intervention / human / shared), state
vector, action vector, confidence, torque — the first `max_seconds` of the cycle (default 15 min,
long enough for a robot holding while it waits for a person). Per camera: frames sampled from the CameraHub at `record_fps`
(default 10 fps), downscaled to 320×240 and encoded to H.264 as they come, into a working
directory on disk. Keeping raw frames for a 76 s cycle would cost ~260 MB per robot; encoding
320×240 at 10 fps costs a few % of a core and a few MB. Videos stop growing at `max_seconds` too, so
the step table and the videos of an episode always cover the same stretch (labeling and the
dataset export line them up by time).

When a cycle ends, failures and intervened episodes are finalised into the spool
(state_dir/spool/<episode>/ with metadata.json, steps.parquet, video_<camera>.mp4) for upload;
the others are deleted. The format of those files is foreman_protocol.episodes.
"""

from __future__ import annotations

import concurrent.futures
import logging
import shutil
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from foreman_protocol.episodes import METADATA_FILE, PRE_INTERVENTION_STEPS, STEP_SCHEMA, STEPS_FILE, ActionMode, EpisodeMetadata
from foreman_protocol.messages import FailureMode, Outcome, RobotFeatures

log = logging.getLogger(__name__)

RECORD_SIZE = (320, 240)


@dataclass
class StepRecord:
    t: float
    phase: str
    mode: str
    action_mode: ActionMode
    progress: float
    confidence: float | None
    torque_nm: float | None
    state: list[float]
    action: list[float]
    lease_id: str | None = None  # the lease a person drove this step under (teleop, shared)


@dataclass
class EpisodeInfo:
    episode: str
    cycle_index: int
    policy_version: str
    seed: int | None
    started_at: str  # ISO 8601 UTC
    started_t: float


@dataclass
class EpisodeResult:
    outcome: Outcome
    failure_mode: FailureMode | None
    duration_s: float
    intervened: bool


class _VideoWriter:
    """H.264 (PyAV) at a constant frame rate; used only from the recorder's single worker thread."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path = path
        self.container = av.open(str(path), mode="w")
        rate = Fraction(fps).limit_denominator(1000)
        self.stream = self.container.add_stream("libx264", rate=rate)
        self.stream.width, self.stream.height = RECORD_SIZE
        self.stream.pix_fmt = "yuv420p"
        self.stream.options = {"preset": "ultrafast", "crf": "28"}
        self.frames = 0

    def add(self, image: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame = frame.reformat(width=RECORD_SIZE[0], height=RECORD_SIZE[1], format="yuv420p")
        frame.pts = self.frames
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        for packet in self.stream.encode(None):
            self.container.mux(packet)
        self.container.close()


@dataclass
class _Episode:
    info: EpisodeInfo
    directory: Path
    steps: deque[StepRecord]
    writers: dict[str, _VideoWriter] = field(default_factory=dict)
    intervened: bool = False


class EpisodeRecorder:
    def __init__(self, state_dir: Path, cameras: list[str], *, record_fps: float = 10.0, control_hz: float = 30.0, max_seconds: float = 900.0,
                 robot_type: str = "", features: RobotFeatures | None = None) -> None:
        self.robot_type = robot_type
        self.features = features  # the robot's declaration: names the step table's state and action columns
        self.work_dir = state_dir / "recording"
        self.spool_dir = state_dir / "spool"
        self.cameras = cameras
        self.record_fps = record_fps
        self.max_steps = int(control_hz * max_seconds)
        self.max_frames = int(record_fps * max_seconds)
        self.current: _Episode | None = None
        # One worker: video encoding stays ordered and off the event loop.
        self.worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="recorder")
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        if self.work_dir.exists():
            for stale in self.work_dir.iterdir():
                log.warning("discarding episode %s: the agent stopped while recording it", stale.name)
                shutil.rmtree(stale, ignore_errors=True)
        self.work_dir.mkdir(parents=True, exist_ok=True)

    def begin(self, info: EpisodeInfo) -> None:
        if self.current is not None:
            self.abandon()
        directory = self.work_dir / info.episode
        directory.mkdir(parents=True)
        episode = self.current = _Episode(info=info, directory=directory, steps=deque())

        def open_writers() -> None:
            for camera in self.cameras:
                episode.writers[camera] = _VideoWriter(directory / f"video_{camera}.mp4", self.record_fps)

        self.worker.submit(open_writers)

    def add_step(self, step: StepRecord) -> None:
        if self.current is not None and len(self.current.steps) < self.max_steps:
            self.current.steps.append(step)

    def add_frame(self, camera: str, image: np.ndarray) -> None:
        episode = self.current
        if episode is None:
            return

        def encode() -> None:
            writer = episode.writers.get(camera)
            if writer is not None and writer.frames < self.max_frames:
                writer.add(image)

        self.worker.submit(encode)

    def mark_intervention(self, t: float) -> None:
        """The robot asked for help (or a person took over) at robot time t (the clock's, like
        `started_t`): its last PRE_INTERVENTION_STEPS steps of driving are labelled."""
        if self.current is None:
            return
        self.current.intervened = True
        since_start = t - self.current.info.started_t  # steps carry t from the cycle's start
        marked = 0
        for step in reversed(self.current.steps):
            if step.t > since_start + 1e-9:
                continue
            if step.action_mode != "robot" or marked == PRE_INTERVENTION_STEPS:
                break  # only the robot's own driving just before, never across an earlier takeover
            step.action_mode = "pre_intervention"
            marked += 1

    def finish(self, result: EpisodeResult, *, keep: bool) -> concurrent.futures.Future[Path | None]:
        """Close the episode; if `keep`, write it to the spool (in the worker) and return its path."""
        episode, self.current = self.current, None
        if episode is None:
            done: concurrent.futures.Future[Path | None] = concurrent.futures.Future()
            done.set_result(None)
            return done
        return self.worker.submit(self._finalise, episode, result, keep)

    def abandon(self) -> None:
        episode, self.current = self.current, None
        if episode is not None:
            self.worker.submit(self._discard, episode)

    def _discard(self, episode: _Episode) -> None:
        for writer in episode.writers.values():
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - the episode is being thrown away; its directory goes next
                pass
        shutil.rmtree(episode.directory, ignore_errors=True)

    def _finalise(self, episode: _Episode, result: EpisodeResult, keep: bool) -> Path | None:
        if not keep:
            self._discard(episode)
            return None
        cameras = []
        for camera, writer in episode.writers.items():
            writer.close()
            if writer.frames > 0:  # an empty video is no file at all: leave that camera out
                cameras.append(camera)
        steps = list(episode.steps)
        write_steps(steps, episode.directory / STEPS_FILE)
        metadata = EpisodeMetadata(
            episode=episode.info.episode, cycle_index=episode.info.cycle_index, policy_version=episode.info.policy_version,
            seed=episode.info.seed, started_at=episode.info.started_at, duration_s=round(result.duration_s, 3),
            outcome=result.outcome, failure_mode=result.failure_mode, intervened=result.intervened or episode.intervened,
            fps=self.record_fps, cameras=cameras, steps=len(steps), robot_type=self.robot_type, features=self.features,
        )
        (episode.directory / METADATA_FILE).write_text(metadata.model_dump_json())
        target = self.spool_dir / episode.info.episode
        shutil.rmtree(target, ignore_errors=True)
        episode.directory.rename(target)  # same filesystem: the spool only ever sees whole episodes
        log.info("episode %s spooled for upload (%s, %d steps)", episode.info.episode, result.outcome, len(steps))
        return target

    def close(self) -> None:
        self.abandon()
        self.worker.shutdown(wait=True)


def write_steps(steps: list[StepRecord], path: Path) -> None:
    # StepRecord's fields are the schema's columns (tests/agent/test_recording.py checks it).
    columns = [pa.array([getattr(s, field.name) for s in steps], type=field.type) for field in STEP_SCHEMA]
    pq.write_table(pa.Table.from_arrays(columns, schema=STEP_SCHEMA), path)


def utc_iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat().replace("+00:00", "Z")


__all__ = ["EpisodeInfo", "EpisodeRecorder", "EpisodeResult", "StepRecord", "asdict", "utc_iso"]
