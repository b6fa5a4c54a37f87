"""The recorder keeps the step table and the videos of an episode over the same stretch of time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow.parquet as pq

from robot_agent.recording import EpisodeInfo, EpisodeRecorder, EpisodeResult, StepRecord, utc_iso


def test_a_long_episode_keeps_steps_and_video_over_the_same_first_seconds(tmp_path: Path) -> None:
    recorder = EpisodeRecorder(tmp_path, ["head"], record_fps=10.0, control_hz=30.0, max_seconds=1.0)
    recorder.begin(EpisodeInfo("00000000-0000-4000-8000-000000000001", 0, "v", 1, utc_iso(0.0), 0.0))
    for i in range(90):  # 3 s of steps and frames: only the first second is kept, of both
        recorder.add_step(StepRecord(t=i / 30, phase="p", mode="autonomous", action_mode="robot", progress=0.0,
                                     confidence=0.9, torque_nm=0.0, state=[0.0], action=[0.0]))
        if i % 3 == 0:
            recorder.add_frame("head", np.full((240, 320, 3), i, dtype=np.uint8))
    spool = recorder.finish(EpisodeResult("failure", "other", 3.0, False), keep=True).result(timeout=60)
    recorder.close()
    assert spool is not None
    steps = pq.read_table(spool / "steps.parquet")
    assert steps.num_rows == 30 and steps.column("t").to_pylist()[-1] < 1.0
    with av.open(str(spool / "video_head.mp4")) as container:
        frames = sum(1 for _ in container.decode(container.streams.video[0]))
    assert frames == 10
    assert json.loads((spool / "metadata.json").read_text())["steps"] == 30


def test_pre_intervention_marks_the_last_seconds_of_a_cycle_that_started_late(tmp_path: Path) -> None:
    """Steps carry t from the cycle's start; the intervention comes at the clock's time (the
    hundredth cycle of a shift starts long after zero)."""
    recorder = EpisodeRecorder(tmp_path, [], control_hz=30.0)
    started_t = 5000.0
    recorder.begin(EpisodeInfo("00000000-0000-4000-8000-000000000002", 99, "v", 1, utc_iso(0.0), started_t))
    for i in range(300):  # 10 s of robot driving
        recorder.add_step(StepRecord(t=i / 30, phase="p", mode="autonomous", action_mode="robot", progress=0.0,
                                     confidence=0.9, torque_nm=0.0, state=[0.0], action=[0.0]))
    recorder.mark_intervention(started_t + 10.0)
    spool = recorder.finish(EpisodeResult("failure", "other", 10.0, True), keep=True).result(timeout=60)
    recorder.close()
    assert spool is not None
    modes = pq.read_table(spool / "steps.parquet").column("action_mode").to_pylist()
    assert modes.count("pre_intervention") == 15 and modes[-15:] == ["pre_intervention"] * 15  # the last 15 steps (Sirius)


def test_the_recorder_writes_the_protocol_s_episode_format(tmp_path: Path) -> None:
    from dataclasses import fields

    from foreman_protocol.episodes import STEP_SCHEMA, EpisodeMetadata

    assert [f.name for f in fields(StepRecord)] == STEP_SCHEMA.names  # write_steps relies on it
    recorder = EpisodeRecorder(tmp_path, [], record_fps=10.0, control_hz=30.0)
    recorder.begin(EpisodeInfo("00000000-0000-4000-8000-000000000003", 0, "v", None, utc_iso(0.0), 0.0))
    recorder.add_step(StepRecord(t=0.0, phase="p", mode="teleop", action_mode="human", progress=0.0,
                                 confidence=None, torque_nm=None, state=[0.0], action=[0.0]))
    spool = recorder.finish(EpisodeResult("aborted", None, 1.0, True), keep=True).result(timeout=60)
    recorder.close()
    assert spool is not None
    assert pq.read_schema(spool / "steps.parquet").equals(STEP_SCHEMA)  # a null-only column keeps its type
    metadata = EpisodeMetadata.model_validate_json((spool / "metadata.json").read_text())
    assert metadata.seed is None and metadata.steps == 1 and metadata.cameras == []


def test_the_agent_records_a_frame_per_control_step_unless_told_otherwise(tmp_path: Path) -> None:
    from robot_agent.sim_robot import SimRobot
    from tests.agent.station import make_agent

    def rates(**settings: Any) -> tuple[float, float]:
        agent = make_agent("http://127.0.0.1:9", "frt_test", tmp_path / str(len(settings)), SimRobot(), None, **settings)
        agent.recorder.close()
        return agent.recorder.record_fps, agent.hub.idle_fps  # robot time, wall time

    assert rates(record_fps=None) == (30.0, 30.0)  # a real-time robot: the control rate, every step with its frames
    assert rates(record_fps=None, time_scale=4.0) == (2.5, 10.0)  # a sped-up sim renders 10 a wall second
    assert rates(record_fps=6.0, time_scale=2.0, control_hz=15.0) == (3.0, 6.0)  # what --record-fps says
