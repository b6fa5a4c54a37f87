"""The control loop with a fake clock: cycles, triggers (uncertainty, faults, takt), failing inference,
recording labels, shared control and the offline policy."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from foreman_learning.policies.base import PolicyOutput
from foreman_protocol import parse_robot_message
from foreman_protocol.messages import LeaseInfo, RobotToServerMessage, TeleopCommand, dump_message
from robot_agent.chunking import ChunkExecutor, inline_submit
from robot_agent.clock import FakeClock
from robot_agent.control import ControlLoop, LoopSettings
from robot_agent.modes import ModeController
from robot_agent.recording import EpisodeRecorder
from robot_agent.safety import EstopLatch
from tests.agent.station import ConfidencePolicy, KinematicStation


class Harness:
    def __init__(self, tmp_path: Any, policy: Any, station: KinematicStation | None = None, recorder: bool = False, **settings: Any) -> None:
        self.clock = FakeClock()
        self.station = station or KinematicStation()
        self.modes = ModeController(self.clock, EstopLatch(tmp_path / "state"))
        infer = lambda observation, prefix: policy(observation) if callable(policy) else policy.infer(observation)  # noqa: E731 - a one-line adapter
        self.executor = ChunkExecutor(infer, inline_submit, refill_below=10, action_dim=self.station.action_dim)
        self.sent: list[dict[str, Any]] = []
        self.recorder = EpisodeRecorder(tmp_path / "state", [], control_hz=30) if recorder else None
        self.loop = ControlLoop(self.station, self.modes, self.executor, self.clock, self.emit,
                                settings=LoopSettings(**settings), recorder=self.recorder, wall_time=self.clock.now,
                                policy_version=lambda: "test-v1")

    def emit(self, message: RobotToServerMessage, reliable: bool) -> None:
        parse_robot_message(dump_message(message))  # everything the loop sends, as the server reads it
        self.sent.append(message.model_dump(mode="json"))

    def run(self, ticks: int) -> None:
        for _ in range(ticks):
            self.loop.tick()
            self.clock.advance(1 / 30)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m["type"] == kind]


def test_cycles_start_end_and_telemetry_at_most_10_hz(tmp_path):
    h = Harness(tmp_path, ConfidencePolicy(), station=KinematicStation(cycle_steps=30))
    h.run(90)  # 3 cycles of 30 steps (a cycle starts and steps in the same tick)
    started, ended = h.of("cycle_started"), h.of("cycle_ended")
    assert len(started) == 3 and [m["cycle_index"] for m in started] == [0, 1, 2]
    assert [m["seed"] for m in started] == [1000, 1001, 1002]
    assert len(ended) == 3 and all(m["outcome"] == "success" and not m["intervened"] for m in ended)
    assert ended[0]["episode"] == started[0]["episode"]
    telemetry = h.of("telemetry")
    gaps = np.diff([m["t"] for m in telemetry])
    assert 20 <= len(telemetry) <= 31 and gaps.min() >= 0.099  # 3 s of robot time at ≤ 10 Hz
    assert h.station.moving_steps == 90


def test_low_confidence_warns_then_intervenes_and_holds(tmp_path):
    h = Harness(tmp_path, ConfidencePolicy(confidences=(0.95, 0.6, 0.3)), station=KinematicStation(cycle_steps=500))
    h.run(24)  # first chunk; second inference (confidence 0.6) arrives once < 10 actions remain
    assert h.modes.mode == "autonomous"
    warnings = h.of("warning")
    assert len(warnings) == 1 and warnings[0]["kind"] == "low_confidence"
    assert h.loop.telemetry().warning.startswith("low confidence")
    h.run(30)  # third chunk: 0.3 < 0.5
    assert h.modes.mode == "hold"
    raised = h.of("intervention_raised")
    assert len(raised) == 1 and raised[0]["trigger"] == "policy_uncertainty" and raised[0]["severity"] == "high"
    assert raised[0]["episode"] == h.of("cycle_started")[0]["episode"]
    moved = h.station.moving_steps
    h.run(30)
    assert h.station.moving_steps == moved  # protective hold: nothing moves
    assert len(h.of("intervention_raised")) == 1  # raised once, not every tick
    assert raised[0]["intervention"] in h.loop.open_interventions


def test_station_fault_raises_fault_and_intervention(tmp_path):
    h = Harness(tmp_path, ConfidencePolicy(), station=KinematicStation(cycle_steps=500, fault_at_step=12))
    h.run(20)
    assert h.modes.mode == "hold"
    assert h.of("fault")[0]["code"] == "torque_out_of_range"
    assert h.of("intervention_raised")[0]["trigger"] == "fault"


def test_inference_exception_faults_holds_and_keeps_running(tmp_path):
    def broken(observation: Any) -> PolicyOutput:
        raise RuntimeError("weights corrupted")

    h = Harness(tmp_path, broken, station=KinematicStation(cycle_steps=500))
    h.run(10)
    assert h.modes.mode == "hold"
    assert h.of("fault")[0]["code"] == "inference_failed" and "weights corrupted" in h.of("fault")[0]["detail"]
    assert h.of("intervention_raised")[0]["trigger"] == "fault"
    ticks = h.loop.stats.ticks
    h.run(5)
    assert h.loop.stats.ticks == ticks + 5  # the loop is alive


def test_takt_overrun_trigger(tmp_path):
    h = Harness(tmp_path, ConfidencePolicy(), station=KinematicStation(cycle_steps=10_000), takt_s=2.0, takt_warning_fraction=0.9)
    h.run(50)
    assert h.of("intervention_raised") == []  # 1.67 s of a 2 s takt
    h.run(10)
    raised = h.of("intervention_raised")
    assert len(raised) == 1 and raised[0]["trigger"] == "takt_overrun"
    assert h.modes.mode == "hold"


def test_teleop_after_intervention_then_hand_back_records_labels(tmp_path):
    h = Harness(tmp_path, ConfidencePolicy(confidences=(0.95, 0.2, 0.95)), station=KinematicStation(cycle_steps=150, succeed=True), recorder=True)
    h.run(30)
    assert h.modes.mode == "hold"
    expires = (datetime.now(UTC) + timedelta(seconds=5)).isoformat()
    lease = LeaseInfo(id=str(uuid.uuid4()), holder="operator", mode="teleop", expires_at=expires, ttl_s=5.0)
    h.modes.lease_granted(lease)
    x_before = h.station.position[0]
    for seq in range(1, 16):
        h.modes.teleop(TeleopCommand(type="teleop", lease_id=lease.id, seq=seq, vx=0.2))
        h.run(1)
    assert h.station.position[0] > x_before + 0.08  # the person moved it
    h.modes.lease_ended(lease.id, "released")
    h.run(200)
    ended = h.of("cycle_ended")[0]
    assert ended["outcome"] == "success" and ended["intervened"] is True
    path = h.recorder.finish  # noqa: F841 - finish already ran at cycle end
    h.recorder.worker.shutdown(wait=True)
    spooled = tmp_path / "state" / "spool" / ended["episode"]
    table = pq.read_table(spooled / "steps.parquet").to_pydict()
    modes = table["action_mode"]
    assert {"robot", "pre_intervention", "human"} <= set(modes)
    assert modes.index("pre_intervention") < modes.index("human")
    assert len(table["state"][0]) == 9 and len(table["action"][0]) == 9
    # Every step a person drove names the lease it was driven under; no other step names one.
    assert {lease for lease, mode in zip(table["lease_id"], modes, strict=True) if mode == "human"} == {lease.id}
    assert all(lease is None for lease, mode in zip(table["lease_id"], modes, strict=True) if mode != "human")


def test_shared_mode_adds_nudges_to_policy_actions(tmp_path):
    h = Harness(tmp_path, ConfidencePolicy(), station=KinematicStation(cycle_steps=1000))
    h.run(3)
    expires = (datetime.now(UTC) + timedelta(seconds=5)).isoformat()
    lease = LeaseInfo(id=str(uuid.uuid4()), holder="operator", mode="shared", expires_at=expires, ttl_s=5.0)
    h.modes.lease_granted(lease)
    assert h.modes.mode == "shared"
    y_before = h.station.position[1]
    x_before = h.station.position[0]
    for seq in range(1, 6):
        h.modes.teleop(TeleopCommand(type="teleop", lease_id=lease.id, seq=seq, vy=0.1))
        h.run(1)
    assert h.station.position[1] > y_before  # the nudge
    assert h.station.position[0] > x_before  # the policy kept driving


@pytest.mark.parametrize("offline_policy", ["hold", "finish"])
def test_offline_policy(tmp_path, offline_policy):
    h = Harness(tmp_path, ConfidencePolicy(), station=KinematicStation(cycle_steps=30), offline_policy=offline_policy)
    h.run(10)
    h.loop.online = False
    h.run(40)
    if offline_policy == "hold":
        assert h.modes.mode == "hold" and h.station.steps < 15 and len(h.of("cycle_ended")) == 0
    else:
        assert h.modes.mode == "autonomous" and len(h.of("cycle_ended")) == 1
        assert len(h.of("cycle_started")) == 1  # no new cycle while the server is away
    h.loop.online = True
    h.run(3)
    assert h.modes.mode == "autonomous" and h.loop.cycle is not None


def test_estop_stops_motion_immediately(tmp_path):
    h = Harness(tmp_path, ConfidencePolicy(), station=KinematicStation(cycle_steps=1000))
    h.run(5)
    h.modes.command("estop", "test")
    moved = h.station.moving_steps
    h.run(10)
    assert h.station.moving_steps == moved
    assert h.loop.telemetry().mode == "estopped"
    np.testing.assert_equal(h.loop.telemetry().confidence, None)


def test_a_new_part_never_moves_on_the_previous_parts_teleop_command(tmp_path):
    h = Harness(tmp_path, ConfidencePolicy(), station=KinematicStation(cycle_steps=40, succeed=True))
    h.run(5)
    expires = (datetime.now(UTC) + timedelta(seconds=5)).isoformat()
    lease = LeaseInfo(id=str(uuid.uuid4()), holder="operator", mode="teleop", expires_at=expires, ttl_s=5.0)
    h.modes.lease_granted(lease)
    seq = 0
    while not h.of("cycle_ended"):  # the person finishes the part, stick held forward
        seq += 1
        h.modes.teleop(TeleopCommand(type="teleop", lease_id=lease.id, seq=seq, vx=0.2))
        h.run(1)
    h.run(3)  # the next part starts (the station resets), still under the person's lease; no new command yet
    assert len(h.of("cycle_started")) == 2 and h.modes.mode == "teleop"
    x = h.station.position[0]
    assert x == 0.0  # the arm did not move on the old command (well within the deadman)
    h.modes.teleop(TeleopCommand(type="teleop", lease_id=lease.id, seq=seq + 1, vx=0.2))
    h.run(1)
    assert h.station.position[0] > x


class LaggingClock(FakeClock):
    """A sim clock whose ticks wake late by the given lags (robot seconds, one per tick)."""

    def __init__(self, lags: list[float]) -> None:
        super().__init__()
        self.lags = list(lags)
        self.held_back: list[float] = []

    async def sleep_until(self, t: float) -> None:
        self.t = max(self.t, t) + (self.lags.pop(0) if self.lags else 0.0)

    def hold_back(self, t: float) -> None:
        self.held_back.append(t)


@pytest.mark.parametrize("sim_time_waits", [True, False])
def test_late_ticks_a_sped_up_sim_catches_up_on_and_those_it_waits_for(tmp_path, sim_time_waits):
    import asyncio

    dt = 1 / 30
    h = Harness(tmp_path, ConfidencePolicy(), station=KinematicStation(cycle_steps=1000), sim_time_waits=sim_time_waits)
    clock = LaggingClock([0.0, 2.5 * dt, 0.0, 0.0, 0.0, 5 * dt] + [0.0] * 10)
    h.loop.clock = clock
    asyncio.run(h.loop.run(stop=lambda: h.loop.stats.ticks >= 12))
    if sim_time_waits:  # 1.5 ticks behind: run the ticks back to back; 4 behind: robot time waits
        assert h.loop.stats.overruns == 1 and len(clock.held_back) == 1
    else:  # a real robot skips ahead whenever it is more than a tick behind, and time never waits
        assert h.loop.stats.overruns == 2 and clock.held_back == []


class LimitedStation(KinematicStation):
    """The kinematic station with declared action limits: ±0.1 m/s per axis, grips 0..1, spin 0..2 rev/s."""

    def __init__(self, **kwargs: Any) -> None:
        from robot_agent.robot import Feature

        super().__init__(**kwargs)
        arm = lambda side: (Feature(f"{side}.vx", "m/s", -0.1, 0.1), Feature(f"{side}.vy", "m/s", -0.1, 0.1),  # noqa: E731
                            Feature(f"{side}.vz", "m/s", -0.1, 0.1), Feature(f"{side}.grip", "", 0.0, 1.0))
        self.action_features = (*arm("left"), *arm("right"), Feature("spin", "rev/s", 0.0, 2.0))
        self.received: list[np.ndarray] = []

    def step(self, action: np.ndarray) -> Any:
        self.received.append(np.array(action))
        return super().step(action)


def test_an_action_outside_the_declared_limits_is_clamped_and_counted(tmp_path):
    too_fast = np.array([0.5, -0.05, 0.0, 3.0, 0.0, 0.0, -0.4, 0.5, -1.0])  # left vx, left grip, right vz, spin outside
    h = Harness(tmp_path, lambda observation: PolicyOutput(np.tile(too_fast, (30, 1)), confidence=0.95), station=LimitedStation())
    h.run(10)
    assert h.station.received, "the policy's actions reached the robot"
    assert all(np.allclose(a, [0.1, -0.05, 0.0, 1.0, 0.0, 0.0, -0.1, 0.5, 0.0]) for a in h.station.received)
    assert h.loop.stats.actions_clamped == 4 * len(h.station.received)
    assert not h.of("fault")
    h.loop.abort_cycle()
    ended = h.of("cycle_ended")[-1]
    assert ended["actions_clamped"] == h.loop.stats.actions_clamped  # the server learns it with the cycle (KPIs)


def test_a_failure_mode_the_robot_did_not_declare_goes_to_the_server_as_other(tmp_path):
    from foreman_protocol.messages import FailureModeSpec

    declared = KinematicStation(cycle_steps=10, succeed=False, failure_mode="cross_threaded")
    declared.failure_modes = (FailureModeSpec(key="cross_threaded", label="Cross-threaded"),)
    silent = KinematicStation(cycle_steps=10, succeed=False, failure_mode="stripped_thread")  # declares none: any key goes
    wrong = KinematicStation(cycle_steps=10, succeed=False, failure_mode="stripped_thread")
    wrong.failure_modes = declared.failure_modes
    unreadable = KinematicStation(cycle_steps=10, succeed=False, failure_mode="Stripped Thread!")  # not a key at all
    sent = {}
    for name, station in (("declared", declared), ("silent", silent), ("wrong", wrong), ("unreadable", unreadable)):
        h = Harness(tmp_path / name, ConfidencePolicy(), station=station)
        h.run(12)
        sent[name] = h.of("cycle_ended")[0]["failure_mode"]
    assert sent == {"declared": "cross_threaded", "silent": "stripped_thread", "wrong": "other", "unreadable": "other"}


def test_a_non_finite_action_faults_and_holds_instead_of_reaching_the_robot(tmp_path):
    broken = np.array([np.nan, 0, 0, 0, 0, 0, 0, 0, 0])
    h = Harness(tmp_path, lambda observation: PolicyOutput(np.tile(broken, (30, 1)), confidence=0.95), station=LimitedStation())
    h.run(5)
    assert h.station.received == []
    assert h.loop.stats.faults >= 1


def test_the_sim_declares_every_number_of_its_state_and_action():
    from foreman_sim.station import NutStation
    from robot_agent.sim_robot import SimRobot

    robot = SimRobot()
    assert len(robot.state_features) == robot.state().shape[0] == 19
    assert len(robot.action_features) == NutStation.ACTION_DIM == robot.action_dim
    assert all(len({f.name for f in features}) == len(features) for features in (robot.state_features, robot.action_features))
    assert all(f.low is not None and f.high is not None and f.low < f.high for f in robot.action_features)
    assert [f.name for f in robot.action_features[:5]] == ["left.vx", "left.vy", "left.vz", "left.grip", "left.spin"]


def test_the_sims_declaration_is_what_its_hello_sends_and_the_server_reads():
    from foreman_protocol.messages import MAX_MESSAGE_BYTES, Hello
    from robot_agent.robot import declared_features
    from robot_agent.sim_robot import SimRobot

    features = declared_features(SimRobot(), 30.0)
    assert features is not None and len(features.state) == 19 and len(features.action) == 10
    assert features.action[4].model_dump() == {"name": "left.spin", "unit": "rev/s", "low": 0.0, "high": 3.0}
    raw = dump_message(Hello(protocol=1, agent_version="t", cameras=["head"], mode="paused", estopped=False, features=features))
    assert len(raw.encode()) < MAX_MESSAGE_BYTES // 8
    assert parse_robot_message(raw).features == features
    assert declared_features(KinematicStation(), 30.0) is None  # declares no actions: hello says nothing
    # The station's failure modes are what its labelers choose from (the default taxonomy's keys).
    assert [mode.key for mode in features.failure_modes] == ["misaligned_nut", "cross_threaded", "over_torque", "under_torque",
                                                             "dropped_nut", "missed_pick", "part_misfixtured"]
    assert features.phases == []  # its phase is free text: "nut 2/4: L drive, R align"
