"""A real recorded sim cycle, as the agent records it: the control loop drives the SimRobot with the
shipped policy, a protective hold stops it, and a person (the sim's expert through the lease-bound
teleop path, one arm at a time) finishes the cycle. Frames are added at the recording rate in robot
time (a fake clock: no waiting)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from foreman_protocol.messages import LeaseInfo, TeleopCommand
from foreman_sim.expert import Expert
from foreman_sim.station import NutStation
from robot_agent.chunking import ChunkExecutor, inline_submit
from robot_agent.clock import FakeClock
from robot_agent.control import ControlLoop, LoopSettings
from robot_agent.modes import ModeController
from robot_agent.recording import EpisodeRecorder
from robot_agent.robot import declared_features
from robot_agent.safety import EstopLatch
from robot_agent.sim_robot import SimRobot


@dataclass
class RecordedCycle:
    spool: Path  # the agent's spool entry: metadata.json, steps.parquet, video_<camera>.mp4
    seed: int
    started: dict[str, Any]
    ended: dict[str, Any]
    station: NutStation  # the final ground truth


def record_sim_cycle(state_dir: Path, *, seed: int = 1003, hold_at: int = 300, cameras: tuple[str, ...] = (),
                     frame_size: tuple[int, int] = (160, 120), record_fps: float = 5.0) -> RecordedCycle:
    clock = FakeClock()
    robot = SimRobot()
    policy = robot.default_policy()
    modes = ModeController(clock, EstopLatch(state_dir))
    executor = ChunkExecutor(lambda observation, prefix: policy.infer(observation), inline_submit, refill_below=10,
                             action_dim=robot.action_dim)
    sent: list[dict[str, Any]] = []
    recorder = EpisodeRecorder(state_dir, list(cameras), record_fps=record_fps, control_hz=30, robot_type=robot.robot_type,
                               features=declared_features(robot, 30))  # as the agent records
    loop = ControlLoop(robot, modes, executor, clock, lambda m, r: sent.append(m.model_dump(mode="json")), recorder=recorder,
                       settings=LoopSettings(seed=seed, max_cycles=1), wall_time=clock.now, policy_version=lambda: "bc-sim-v1")
    frame_every = round(30 / record_fps)
    ticks = 0

    def tick() -> None:
        nonlocal ticks
        loop.tick()
        if cameras and ticks % frame_every == 0:
            for camera in cameras:
                recorder.add_frame(camera, robot.capture(camera, frame_size))
        ticks += 1
        clock.advance(1 / 30)

    for _ in range(hold_at):
        tick()
    modes.protective_hold("a person steps in")
    for _ in range(20):  # braking while holding: recorded as the braking command, not zeros
        tick()
    expires = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    lease = LeaseInfo(id=str(uuid.uuid4()), holder="operator", mode="teleop", expires_at=expires, ttl_s=3600.0)
    modes.lease_granted(lease)
    seq = 0
    while loop.cycle is not None and loop.cycle.steps < 4000:
        station = robot.station
        side = next((s for s in ("left", "right") if not station.arms[s].done), "left")
        command = Expert.teleop_command(station, side)
        seq += 1
        modes.teleop(TeleopCommand(type="teleop", lease_id=lease.id, seq=seq, arm=side, vx=command.vx, vy=command.vy,
                                   vz=command.vz, spin=command.spin, grip=command.grip))
        tick()
    recorder.worker.shutdown(wait=True)
    recorder.close()
    ended = next(m for m in sent if m["type"] == "cycle_ended")
    started = next(m for m in sent if m["type"] == "cycle_started")
    return RecordedCycle(state_dir / "spool" / ended["episode"], seed, started, ended, robot.station)
