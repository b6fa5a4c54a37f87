"""Real episode recordings for tests: the agent's own EpisodeRecorder (H.264 through PyAV)."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np

from foreman_protocol.messages import FeatureSpec, Outcome, RobotFeatures
from robot_agent.recording import EpisodeInfo, EpisodeRecorder, EpisodeResult, StepRecord, utc_iso
from robot_agent.sim_robot import SIM_ACTION_FEATURES, SIM_STATE_FEATURES, SimRobot

CAMERAS = ["head", "wrist_left"]
FPS = 10.0
HZ = 30.0


def sim_state(t: float) -> list[float]:
    """The simulated station's layout: per arm x, y, z, vx, vy, vz, grip, torque/10, installed; then t/takt."""
    arm = [0.2 + 0.02 * t, 0.3, 0.1 - 0.01 * t, 0.02, 0.0, -0.01, 1.0, 0.0, 0.0]
    return [*arm, *arm, t / 76.0]


def sim_declaration() -> RobotFeatures:
    """What the nut station's driver declares (its hello.features)."""
    spec = lambda f: FeatureSpec(name=f.name, unit=f.unit, low=f.low, high=f.high)  # noqa: E731
    return RobotFeatures(control_hz=HZ, state=[spec(f) for f in SIM_STATE_FEATURES], action=[spec(f) for f in SIM_ACTION_FEATURES],
                         teleop=SimRobot.teleop)


def record_episode(state_dir: Path, seconds: float = 6.0, takeover_at: float | None = 4.0, outcome: Outcome = "failure",
                   started_unix: float = 1_795_600_000.0, robot_type: str = SimRobot.robot_type,
                   features: RobotFeatures | None = None, declared: bool = True, lease_id: str | None = None,
                   seed: int | None = 7) -> Path:
    """A real spool entry: steps at 30 Hz, frames at 10 fps, a person taking over at `takeover_at`
    (under `lease_id`, when given), recorded with the nut station's declaration (`features` another
    one; `declared=False` none, as agents before the declaration recorded); `seed` None as a real
    robot records (no simulation to replay)."""
    features = (features or sim_declaration()) if declared else None
    recorder = EpisodeRecorder(state_dir, CAMERAS, record_fps=FPS, control_hz=HZ, robot_type=robot_type if declared else "",
                               features=features)
    episode = str(uuid.uuid4())
    t0 = 1000.0
    recorder.begin(EpisodeInfo(episode, 3, "bc-sim-v1", seed, utc_iso(started_unix), t0))
    steps = int(seconds * HZ)
    for i in range(steps):
        t = t0 + i / HZ
        if takeover_at is not None and i == int(takeover_at * HZ):
            recorder.mark_intervention(t)
        human = takeover_at is not None and i >= int(takeover_at * HZ)
        recorder.add_step(StepRecord(t=t - t0, phase="nut 1/4: L pick, R pick", mode="teleop" if human else "autonomous",
                                     action_mode="human" if human else "robot", progress=i / steps,
                                     confidence=None if human else 0.9 - 0.4 * i / steps, torque_nm=0.0,
                                     state=sim_state(i / HZ), action=[0.02, 0.0, -0.01, 1.0, 0.0] * 2,
                                     lease_id=lease_id if human else None))
        if i % int(HZ / FPS) == 0:
            for k, camera in enumerate(CAMERAS):
                image = np.full((480, 640, 3), (i * 3 + 80 * k) % 255, dtype=np.uint8)
                recorder.add_frame(camera, image)
    spool = recorder.finish(EpisodeResult(outcome=outcome, failure_mode="cross_threaded" if outcome == "failure" else None,
                                          duration_s=seconds, intervened=takeover_at is not None), keep=True).result(timeout=60)
    recorder.close()
    assert spool is not None
    return spool
