"""LeRobotDataset v3.0 writer (pyarrow + PyAV, no LeRobot needed); ../shared/lerobot-v3-format.md
lists what LeRobot's loader requires and the mistakes that load silently wrong.

One row per video frame. A clip's video frame k shows robot time k/fps into the episode; its row
takes the step recorded nearest that time: state, action, action mode (the Sirius
segment: robot / pre_intervention / human / shared), who held control (control_source) and under
which lease (lease_index into info.json's foreman.leases: the lease id, its operator and mode), and
its training weight (sample_weight, foreman_learning/weights.py). Videos go one
file per episode and camera, each from timestamp 0: the agent's H.264 packets copied as they are
when their timing already is k/fps (the usual case), else re-encoded (H.264, yuv420p, GOP 2, one
thread: deterministic bytes).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from foreman_learning.weights import HUMAN_WEIGHT_SHARE, PRE_INTERVENTION_WEIGHT, share_human_weight, step_weights
from foreman_protocol.episodes import ACTION_MODES, CONTROL_SOURCE_OF_MODE, CONTROL_SOURCES, HUMAN_ACTION_MODES

CHUNK_SIZE = 1000
QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}


@dataclass
class EpisodeSource:
    """One labeled episode as the exporter needs it."""

    key: str  # the episode's uuid
    task: str
    fps: float
    steps: pa.Table  # the agent's step table (foreman_protocol.episodes.STEP_SCHEMA)
    videos: dict[str, Path]  # camera -> mp4
    success: bool
    failure_mode: str  # the label's, "" for none
    failure_t: float | None
    good_demo: bool | None
    robot: str
    policy_version: str
    robot_type: str = ""  # what the robot declared itself to be (so101_follower, aloha, ...)
    state_names: list[str] | None = None  # its declared state and action features, in column order
    action_names: list[str] | None = None


@dataclass
class _Written:
    rows: dict[str, list[Any]] = field(default_factory=dict)
    episodes: list[dict[str, Any]] = field(default_factory=list)
    image_samples: dict[str, list[np.ndarray]] = field(default_factory=dict)


def frame_count(path: Path) -> int:
    """Frames in the file: the container's count when it keeps one (mp4 does), else by decoding."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.frames:
            return int(stream.frames)
        return sum(1 for _ in container.decode(stream))


def copy_video(source: Path, target: Path, fps: Fraction, frames: int, samples: list[np.ndarray], every: int = 1) -> tuple[int, int]:
    """The first `frames` frames (of every `every`-th source frame) into `target`: copied packet for
    packet when the source already is what LeRobot needs (H.264, yuv420p, frame k at k/fps in decode
    order — what the agent records) and nothing is left out, else re-encoded. Returns (width, height)."""
    if every == 1 and _copy_packets(source, target, fps, frames, samples):
        return _size(target)
    return reencode(source, target, fps, frames, samples, every)


def stats_sample(frame: av.VideoFrame) -> np.ndarray:
    """A frame's pixels for the image statistics: a quarter of each side, (N, 3) uint8 (scaled by
    the decoder's own converter, cheaper than a full-size RGB copy)."""
    small = frame.reformat(width=max(1, frame.width // 4), height=max(1, frame.height // 4), format="rgb24")
    return small.to_ndarray().reshape(-1, 3)


def _size(path: Path) -> tuple[int, int]:
    with av.open(str(path)) as container:
        context = container.streams.video[0].codec_context
        return context.width, context.height


def _copy_packets(source: Path, target: Path, fps: Fraction, frames: int, samples: list[np.ndarray]) -> bool:
    taken: list[np.ndarray] = []
    with av.open(str(source)) as src:
        stream = src.streams.video[0]
        if stream.codec_context.name != "h264" or stream.codec_context.pix_fmt != "yuv420p":
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        with av.open(str(target), mode="w", format="mp4") as out:
            copy = out.add_stream_from_template(stream)
            index = 0
            for packet in src.demux(stream):
                if packet.size == 0 or index >= frames:
                    continue
                if packet.pts is None or abs(float(packet.pts * packet.time_base) - index / float(fps)) > 1e-4:
                    break  # reordered or irregular timing: re-encode instead
                for frame in packet.decode():
                    if index % 10 == 0:  # a sample of frames for the image statistics
                        taken.append(stats_sample(frame))
                packet.stream = copy
                out.mux(packet)
                index += 1
    if index != frames:
        target.unlink(missing_ok=True)
        return False
    samples.extend(taken)
    return True


def reencode(source: Path, target: Path, fps: Fraction, frames: int, samples: list[np.ndarray], every: int = 1) -> tuple[int, int]:
    """Copy the first `frames` frames (of every `every`-th) into a LeRobot-friendly H.264 file with
    pts k/fps; returns (w, h)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    width = height = 0
    with av.open(str(source)) as src, av.open(str(target), mode="w", format="mp4") as out:
        stream = None
        written = 0
        for index, frame in enumerate(src.decode(src.streams.video[0])):
            if written >= frames:
                break
            if index % every:
                continue
            if stream is None:
                width, height = frame.width, frame.height
                stream = out.add_stream("libx264", rate=fps)
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                stream.options = {"g": "2", "crf": "23", "preset": "veryfast", "threads": "1"}
            image = frame.to_ndarray(format="rgb24")
            if written % 10 == 0:  # a sample of frames for the image statistics
                samples.append(stats_sample(frame))
            fresh = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
            fresh.pts = written  # in 1/fps units: frame k at k/fps
            for packet in stream.encode(fresh):
                out.mux(packet)
            written += 1
        if stream is not None:
            for packet in stream.encode(None):
                out.mux(packet)
    return width, height


def lease_ids(steps: pa.Table) -> list[str]:
    """The leases a step table's steps were driven under, in order of first use (none for a table
    from an agent older than the column)."""
    if "lease_id" not in steps.column_names:
        return []
    return list(dict.fromkeys(lease for lease in steps.column("lease_id").to_pylist() if lease))


def nearest_steps(t: np.ndarray, moments: np.ndarray) -> np.ndarray:
    """The index of the step time in `t` (ascending) nearest each moment. Steps run a little after
    their tick (jitter), so at a recording rate equal to the control rate frame k pairs with step
    k, where "the last step at or before" would pair it with step k - 1."""
    after = np.clip(np.searchsorted(t, moments, side="left"), 0, len(t) - 1)
    before = np.clip(after - 1, 0, len(t) - 1)
    return np.where(np.abs(t[before] - moments) <= np.abs(t[after] - moments), before, after)


def rows_for(source: EpisodeSource, frames: int, lease_index: dict[str, int], fps: float | None = None) -> dict[str, np.ndarray]:
    """For each of `frames` video frames at `fps` (the clip's own rate by default), the step recorded
    nearest its moment. `sample_weight` is the step's own weight, before the person's
    share of the whole dataset is applied."""
    t = source.steps.column("t").to_numpy(zero_copy_only=False).astype(np.float64)
    t = t - t[0]
    moments = np.arange(frames) / (fps or source.fps)
    index = nearest_steps(t, moments)
    state = np.asarray(source.steps.column("state").to_pylist(), dtype=np.float32)[index]
    action = np.asarray(source.steps.column("action").to_pylist(), dtype=np.float32)[index]
    action_modes = np.asarray(source.steps.column("action_mode").to_pylist())
    modes = np.asarray([ACTION_MODES.index(m) for m in action_modes], dtype=np.int64)[index]
    sources = [CONTROL_SOURCES.index(CONTROL_SOURCE_OF_MODE.get(mode, "none")) for mode in source.steps.column("mode").to_pylist()]
    leases = source.steps.column("lease_id").to_pylist() if "lease_id" in source.steps.column_names else [None] * len(t)
    return {"observation.state": state, "action": action, "action_mode": modes,
            "intervention": np.isin(modes, [ACTION_MODES.index(m) for m in HUMAN_ACTION_MODES]),
            "control_source": np.asarray(sources, dtype=np.int64)[index],
            "lease_index": np.asarray([lease_index[lease] if lease else -1 for lease in leases], dtype=np.int64)[index],
            "sample_weight": step_weights(action_modes, source.success, source.good_demo)[index]}


def feature_stats(values: np.ndarray) -> dict[str, Any]:
    """min/max/mean/std/quantiles per dimension (scalars as shape [1]); bool min/max stay booleans."""
    values = np.asarray(values)
    if values.ndim == 1:
        values = values.reshape(-1, 1)
    numbers = values.astype(np.float64)
    stats: dict[str, Any] = {"min": values.min(axis=0).tolist(), "max": values.max(axis=0).tolist(),
                             "mean": numbers.mean(axis=0).tolist(), "std": numbers.std(axis=0).tolist(),
                             "count": [int(values.shape[0])]}
    for name, q in QUANTILES.items():
        stats[name] = np.quantile(numbers, q, axis=0).tolist()
    return stats


QUANTILE_PIXELS = 250_000


def image_stats(samples: list[np.ndarray]) -> dict[str, Any]:
    pixels = np.concatenate(samples) if samples else np.zeros((1, 3), dtype=np.uint8)  # uint8 RGB; LeRobot's stats are in [0, 1]
    per_channel = {"min": pixels.min(axis=0) / 255.0, "max": pixels.max(axis=0) / 255.0, "mean": pixels.mean(axis=0) / 255.0,
                   "std": pixels.std(axis=0) / 255.0}
    # Quantiles from an even stride of at most QUANTILE_PIXELS pixels: a partition of every sampled
    # pixel cost more than the rest of a 30 fps export's statistics (bench export), for a figure
    # that moves by less than 1/255.
    spread = pixels[:: max(1, len(pixels) // QUANTILE_PIXELS)]
    per_channel.update({name: np.quantile(spread, q, axis=0) / 255.0 for name, q in QUANTILES.items()})
    stats: dict[str, Any] = {k: [[[float(c)]] for c in v] for k, v in per_channel.items()}
    stats["count"] = [int(pixels.shape[0])]
    return stats


def tasks_table(tasks: list[str]) -> pa.Table:
    """tasks.parquet with the pandas metadata that makes the task text the index (LeRobot reads it so)."""
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()), "__index_level_0__": pa.array(tasks, pa.string())})
    pandas_meta = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object", "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64", "metadata": None},
            {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode", "numpy_type": "object", "metadata": None},
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.3",
    }
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})


def _one(sources: list[EpisodeSource], what: str, value: Callable[[EpisodeSource], Any]) -> Any:
    """The value every episode that declares one shares (a dataset has one robot type and one set of
    feature names), or None when none declares it. An episode recorded before agents sent their
    declaration takes the others' (the widths are checked against it below)."""
    declared = {json.dumps(value(s)): value(s) for s in sources if value(s)}
    if len(declared) > 1:
        robots = sorted({s.robot for s in sources})
        raise ValueError(f"the episodes' robots ({', '.join(robots[:5])}) differ in {what}: export each kind of robot separately")
    return next(iter(declared.values()), None)


def rate_step(recorded: float, wanted: float | None) -> int:
    """Every how many recorded frames a row is taken for a dataset at `wanted` fps (None: every one);
    the rate must divide the recording's, so that every row has its own recorded frame."""
    if wanted is None or abs(wanted - recorded) < 1e-9:
        return 1
    step = round(recorded / wanted)
    if wanted > recorded or step < 1 or abs(recorded / step - wanted) > 1e-6:
        divisors = [f"{recorded / k:g}" for k in range(1, int(recorded) + 1) if abs(recorded / k - round(recorded / k)) < 1e-9][:6]
        raise ValueError(f"the episodes are recorded at {recorded:g} fps: an export's rate must divide it ({', '.join(divisors)} fps)")
    return step


def write_dataset(sources: list[EpisodeSource], root: Path, *, robot_type: str = "", leases: dict[str, dict[str, Any]] | None = None,
                  fps: float | None = None, progress: Callable[[float, str], None] = lambda fraction, message: None) -> dict[str, Any]:
    """Write the dataset under `root`; returns info.json's content. Its robot type and the names of
    its state and action columns are what the robots declared (`robot_type` when they did not).
    `leases`: what the server knows of each lease the steps name (operator, mode, start, end).
    `fps`: the dataset's rate, one that divides the recording's (None: the recording's own)."""
    if not sources:
        raise ValueError("nothing to export: no episodes selected")
    robot_type = _one(sources, "robot type", lambda s: s.robot_type) or robot_type or "unknown"
    state_names = _one(sources, "state features", lambda s: s.state_names)
    action_names = _one(sources, "action features", lambda s: s.action_names)
    fps_values = {s.fps for s in sources}
    if len(fps_values) != 1:
        raise ValueError(f"episodes have different frame rates ({sorted(fps_values)}): export them separately")
    recorded = fps_values.pop()
    every = rate_step(recorded, fps)
    rate = Fraction(recorded / every).limit_denominator(1000)
    cameras = sorted(set.intersection(*(set(s.videos) for s in sources)))
    if not cameras:
        raise ValueError("the selected episodes share no camera")
    tasks = sorted({s.task for s in sources})
    written = _Written(rows={k: [] for k in ("observation.state", "action", "action_mode", "intervention", "control_source", "lease_index",
                                             "sample_weight", "timestamp", "frame_index", "episode_index", "index", "task_index")},
                       image_samples={c: [] for c in cameras})
    lease_index = {lease: i for i, lease in enumerate(dict.fromkeys(lease for s in sources for lease in lease_ids(s.steps)))}
    shapes: dict[str, tuple[int, int]] = {}
    total = 0
    for episode_index, source in enumerate(sources):
        recorded_frames = min([frame_count(source.videos[c]) for c in cameras])
        if recorded_frames == 0:
            raise ValueError(f"episode {source.key} has an empty video")
        frames = -(-recorded_frames // every)  # frames 0, every, 2 * every, ...
        rows = rows_for(source, frames, lease_index, float(rate))
        chunk, file_index = episode_index // CHUNK_SIZE, episode_index % CHUNK_SIZE
        episode_row: dict[str, Any] = {
            "episode_index": episode_index, "tasks": [source.task], "length": frames,
            "data/chunk_index": 0, "data/file_index": 0,
            "dataset_from_index": total, "dataset_to_index": total + frames,
            "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0,
            "success": source.success, "failure_mode": source.failure_mode, "failure_t": source.failure_t,
            "good_demo": source.good_demo, "foreman_episode": source.key, "robot": source.robot,
            "policy_version": source.policy_version,
        }
        for camera in cameras:
            key = f"observation.images.{camera}"
            target = root / "videos" / key / f"chunk-{chunk:03d}" / f"file-{file_index:03d}.mp4"
            shapes[camera] = copy_video(source.videos[camera], target, rate, frames, written.image_samples[camera], every)
            episode_row.update({f"videos/{key}/chunk_index": chunk, f"videos/{key}/file_index": file_index,
                                f"videos/{key}/from_timestamp": 0.0, f"videos/{key}/to_timestamp": frames / float(rate)})
        for name, values in rows.items():
            written.rows[name].extend(values.tolist())
        written.rows["timestamp"].extend((np.arange(frames, dtype=np.float64) / float(rate)).astype(np.float32).tolist())
        written.rows["frame_index"].extend(range(frames))
        written.rows["episode_index"].extend([episode_index] * frames)
        written.rows["index"].extend(range(total, total + frames))
        written.rows["task_index"].extend([tasks.index(source.task)] * frames)
        written.episodes.append(episode_row)
        total += frames
        progress((episode_index + 1) / len(sources) * 0.9, f"episode {episode_index + 1} of {len(sources)}")

    state_dim = len(written.rows["observation.state"][0])
    action_dim = len(written.rows["action"][0])
    for what, names, dim in (("state", state_names, state_dim), ("action", action_names, action_dim)):
        if names is not None and len(names) != dim:
            raise ValueError(f"the robots declare {len(names)} {what} features but their step tables have {dim}")
    # The person's rows carry the fixed share of the dataset's weight that a retraining round gives them.
    written.rows["sample_weight"] = share_human_weight(np.asarray(written.rows["sample_weight"], dtype=np.float64),
                                                       np.asarray(written.rows["intervention"], dtype=bool)).tolist()
    data = pa.table({
        "observation.state": pa.array(written.rows["observation.state"], pa.list_(pa.float32(), state_dim)),
        "action": pa.array(written.rows["action"], pa.list_(pa.float32(), action_dim)),
        "action_mode": pa.array(written.rows["action_mode"], pa.int64()),
        "intervention": pa.array(written.rows["intervention"], pa.bool_()),
        "control_source": pa.array(written.rows["control_source"], pa.int64()),
        "lease_index": pa.array(written.rows["lease_index"], pa.int64()),
        "sample_weight": pa.array(written.rows["sample_weight"], pa.float32()),
        "timestamp": pa.array(written.rows["timestamp"], pa.float32()),
        "frame_index": pa.array(written.rows["frame_index"], pa.int64()),
        "episode_index": pa.array(written.rows["episode_index"], pa.int64()),
        "index": pa.array(written.rows["index"], pa.int64()),
        "task_index": pa.array(written.rows["task_index"], pa.int64()),
    })
    (root / "data" / "chunk-000").mkdir(parents=True, exist_ok=True)
    pq.write_table(data, root / "data" / "chunk-000" / "file-000.parquet")

    features: dict[str, Any] = {
        "observation.state": {"dtype": "float32", "shape": [state_dim], "names": state_names},
        "action": {"dtype": "float32", "shape": [action_dim], "names": action_names},
        "action_mode": {"dtype": "int64", "shape": [1], "names": None},
        "intervention": {"dtype": "bool", "shape": [1], "names": None},
        "control_source": {"dtype": "int64", "shape": [1], "names": None},
        "lease_index": {"dtype": "int64", "shape": [1], "names": None},
        "sample_weight": {"dtype": "float32", "shape": [1], "names": None},
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        "frame_index": {"dtype": "int64", "shape": [1], "names": None},
        "episode_index": {"dtype": "int64", "shape": [1], "names": None},
        "index": {"dtype": "int64", "shape": [1], "names": None},
        "task_index": {"dtype": "int64", "shape": [1], "names": None},
    }
    for camera in cameras:
        width, height = shapes[camera]
        features[f"observation.images.{camera}"] = {
            "dtype": "video", "shape": [height, width, 3], "names": ["height", "width", "channels"],
            "info": {"video.height": height, "video.width": width, "video.codec": "h264", "video.pix_fmt": "yuv420p",
                     "video.is_depth_map": False, "video.fps": float(rate), "video.channels": 3, "has_audio": False},
        }

    stats: dict[str, Any] = {}
    for name in ("observation.state", "action", "action_mode", "intervention", "control_source", "lease_index", "sample_weight",
                 "timestamp", "frame_index", "episode_index", "index", "task_index"):
        stats[name] = feature_stats(np.asarray(written.rows[name]))
    for camera in cameras:
        stats[f"observation.images.{camera}"] = image_stats(written.image_samples[camera])

    episodes = written.episodes
    for row in episodes:  # per-episode statistics, as LeRobot writes them
        lo, hi = row["dataset_from_index"], row["dataset_to_index"]
        for name in ("observation.state", "action"):
            part = np.asarray(written.rows[name][lo:hi])
            for stat in ("min", "max", "mean", "std"):
                row[f"stats/{name}/{stat}"] = getattr(part, stat)(axis=0).astype(np.float64).tolist()
    (root / "meta" / "episodes" / "chunk-000").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(episodes), root / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    pq.write_table(tasks_table(tasks), root / "meta" / "tasks.parquet")
    info = {
        "codebase_version": "v3.0", "robot_type": robot_type, "fps": float(rate),
        "total_episodes": len(episodes), "total_frames": total, "total_tasks": len(tasks),
        "chunks_size": CHUNK_SIZE, "data_files_size_in_mb": 100, "video_files_size_in_mb": 200,
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
        "features": features, "splits": {"train": f"0:{len(episodes)}"},
        "foreman": {
            "action_modes": list(ACTION_MODES), "control_sources": list(CONTROL_SOURCES),
            "leases": [{"index": i, "lease_id": lease, "operator": None, "mode": None, "started_at": None, "ended_at": None,
                        **(leases or {}).get(lease, {})} for lease, i in lease_index.items()],
            "sample_weight": {"pre_intervention": PRE_INTERVENTION_WEIGHT, "human_share": HUMAN_WEIGHT_SHARE},
            "note": ("action_mode indexes action_modes (the Sirius segments); intervention is true where a person drove (human or "
                     "shared); control_source indexes control_sources; lease_index indexes leases (-1: nobody held a lease); "
                     "sample_weight is the retraining round's weight (docs/labeling.md)"),
        },
    }
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=2, sort_keys=True))
    (root / "meta" / "stats.json").write_text(json.dumps(stats, indent=2, sort_keys=True))
    progress(1.0, "dataset written")
    return info
