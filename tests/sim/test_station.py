"""The simulated nut station: deterministic per seed, the expert succeeds, and every failure mode
comes from a specific bad motion."""

from __future__ import annotations

import numpy as np
import pytest

from foreman_sim.expert import Expert
from foreman_sim.station import DT, FAILURE_MODES, NutStation
from robot_agent.modes import TeleopVelocity
from robot_agent.sim_robot import SimRobot


def run_expert(seed: int, until: int | None = None) -> NutStation:
    station = NutStation(seed)
    while not station.outcome.done and (until is None or station.steps < until):
        station.step(Expert.action(station))
    return station


def test_same_seed_same_cycle_and_frames() -> None:
    a, b = run_expert(7, until=600), run_expert(7, until=600)
    assert np.array_equal(a.state_vector(), b.state_vector())
    robot_a, robot_b = SimRobot(), SimRobot()
    robot_a.station, robot_b.station = a, b
    assert np.array_equal(robot_a.capture("head", (160, 120)), robot_b.capture("head", (160, 120)))
    assert not np.array_equal(run_expert(8, until=600).state_vector(), a.state_vector())


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_the_expert_installs_all_four_nuts_within_takt(seed: int) -> None:
    station = run_expert(seed)
    assert station.outcome.success, station.outcome
    assert 45 < station.t < 70
    assert len(station.installed_nuts) == 4


def drive_until(station: NutStation, condition, tweak=None, limit: int = 3000) -> None:
    for _ in range(limit):
        if station.outcome.done or condition(station):
            return
        action = Expert.action(station)
        if tweak is not None:
            action = tweak(station, action)
        station.step(action)


def left_phase(station: NutStation) -> str:
    return station.phase().split("L ")[1].split(",")[0]


def failure_of(bad) -> str | None:
    station = NutStation(11)
    bad(station)
    for _ in range(3000):
        if station.outcome.done:
            break
        station.step(Expert.action(station))
    return station.outcome.failure_mode


def offset_descent(station: NutStation) -> None:
    # Carry the nut to the hole, then come down 4 mm off its axis.
    drive_until(station, lambda s: left_phase(s) == "align" and s.arms["left"].position[2] > 0.05
                and np.linalg.norm(s.arms["left"].position[:2] - s.target_hole("left")) < 0.004)
    while not station.outcome.done:
        action = np.zeros(10)
        action[3] = action[8] = 1.0
        hole = station.target_hole("left")
        error = hole + np.array([0.004, 0.0]) - station.arms["left"].position[:2]
        action[0:2] = np.clip(4 * error, -0.02, 0.02)
        action[2] = -0.01
        station.step(action)


def fast_descent(station: NutStation) -> None:
    drive_until(station, lambda s: left_phase(s) == "align" and s.arms["left"].position[2] < 0.04
                and np.linalg.norm(s.arms["left"].position[:2] - s.target_hole("left")) < 0.001)
    while not station.outcome.done:
        action = Expert.action(station)
        action[2] = -0.05
        station.step(action)


def keep_spinning(station: NutStation) -> None:
    drive_until(station, lambda s: left_phase(s) == "drive")
    while not station.outcome.done:
        action = Expert.action(station)
        action[3], action[4] = 1.0, 1.0
        station.step(action)


def early_release(station: NutStation) -> None:
    drive_until(station, lambda s: left_phase(s) == "drive" and s.arms["left"].revs > 2.0)
    while not station.outcome.done:
        action = Expert.action(station)
        action[3], action[4] = -1.0, 0.0
        station.step(action)


def open_while_carrying(station: NutStation) -> None:
    drive_until(station, lambda s: left_phase(s) == "align" and s.arms["left"].position[2] > 0.05)
    while not station.outcome.done:
        action = Expert.action(station)
        action[3] = -1.0
        station.step(action)


def close_off_the_nut(station: NutStation) -> None:
    while not station.outcome.done and station.steps < 5:
        action = Expert.action(station)
        action[3] = 1.0  # close at once, far from the feeder
        station.step(action)


def jerk_while_carrying(station: NutStation) -> None:
    drive_until(station, lambda s: left_phase(s) == "align" and s.arms["left"].position[2] > 0.05)
    action = Expert.action(station)
    action[0] = 0.2  # 0.2 m/s in one period: far above what a held nut survives
    station.step(action)


def push_sideways_while_threading(station: NutStation) -> None:
    drive_until(station, lambda s: left_phase(s) == "drive")
    for _ in range(5):  # a sustained push (a one-period nudge springs back: see the next test)
        action = Expert.action(station)
        action[0] = 0.05
        station.step(action)


def test_a_brief_sideways_nudge_while_threading_springs_back() -> None:
    station = NutStation(11)
    drive_until(station, lambda s: left_phase(s) == "drive")
    action = Expert.action(station)
    action[0] = 0.05
    station.step(action)
    drive_until(station, lambda s: False)
    assert station.outcome.success


def dawdle(station: NutStation) -> None:
    for _ in range(int(80 / DT)):
        if station.outcome.done:
            break
        station.hold()


@pytest.mark.parametrize(("bad", "mode"), [
    (offset_descent, "misaligned_nut"), (fast_descent, "cross_threaded"), (push_sideways_while_threading, "cross_threaded"),
    (keep_spinning, "over_torque"), (early_release, "under_torque"), (open_while_carrying, "dropped_nut"),
    (jerk_while_carrying, "dropped_nut"), (close_off_the_nut, "missed_pick"), (dawdle, "takt_overrun"),
])
def test_each_failure_mode_comes_from_a_bad_motion(bad, mode) -> None:
    assert mode in FAILURE_MODES
    assert failure_of(bad) == mode


def test_over_torque_is_preceded_by_a_station_fault() -> None:
    station = NutStation(11)
    drive_until(station, lambda s: left_phase(s) == "drive")
    faults = []
    while not station.outcome.done:
        action = Expert.action(station)
        action[3], action[4] = 1.0, 0.3
        station.step(action)
        faults.append(station.fault)
    assert station.outcome.failure_mode == "over_torque" and "torque_out_of_range" in faults


def test_teleop_moves_only_the_commanded_arm_and_holds_keep_the_grip() -> None:
    robot = SimRobot()
    robot.reset(5)
    left, right = robot.station.arms["left"].position.copy(), robot.station.arms["right"].position.copy()
    command = TeleopVelocity("lease", 1, "left", 0.05, 0.0, 0.0, 0.0, None, 0.0)
    for _ in range(15):
        status = robot.step(robot.teleop_action(command))
    assert robot.station.arms["left"].position[0] == pytest.approx(left[0] + 0.05 * 15 * DT, abs=1e-6)
    assert np.allclose(robot.station.arms["right"].position, right)
    assert not status.done
    close = TeleopVelocity("lease", 2, "left", 0.0, 0.0, 0.0, 0.0, "close", 0.0)
    for _ in range(8):
        status = robot.step(robot.teleop_action(close))
    assert status.failure_mode == "missed_pick"  # closed on nothing: a person can fail too


def test_cameras_render_640x480_and_small() -> None:
    robot = SimRobot()
    robot.reset(2)
    for camera in robot.cameras:
        frame = robot.capture(camera, (640, 480))
        assert frame.shape == (480, 640, 3) and frame.dtype == np.uint8 and frame.std() > 3
        assert robot.capture(camera, (160, 120)).shape == (120, 160, 3)
    observation = robot.observation()
    assert set(observation["images"]) == {"wrist_left", "wrist_right"}
    assert observation["images"]["wrist_left"].shape == (32, 32)
    assert "station" not in observation  # ground truth only for a policy that asks for it
    robot.observe_ground_truth(True)
    snapshot = robot.observation()["station"]
    robot.step(np.full(robot.action_dim, 0.1))
    assert snapshot.steps == robot.station.steps - 1  # a copy: later steps do not change it
    with pytest.raises(ValueError):
        robot.capture("nowhere", (64, 48))
    with pytest.raises(ValueError):
        SimRobot(control_hz=50)


def pick_off_centre(station: NutStation, offset_m: float) -> None:
    """Drive the left arm to its feeder nut like the expert, but close `offset_m` off the nut's centre."""
    drive_until(station, lambda s: s.arms["left"].feeder_nut is not None and s.arms["left"].position[2] < 0.0015
                and np.linalg.norm(s.arms["left"].position[:2] - s.arms["left"].feeder_nut.position[:2]) < 0.0002)
    arm = station.arms["left"]
    assert arm.feeder_nut is not None
    arm.position[:2] = arm.feeder_nut.position[:2] + np.array([offset_m, 0.0])  # the policy's error
    arm.velocity[:] = 0.0
    while arm.nut is None and not station.outcome.done:
        action = Expert.action(station)
        action[0:3], action[3] = 0.0, 1.0
        station.step(action)


def test_an_off_centre_grasp_carries_the_nut_off_axis_and_holds_it_less_firmly() -> None:
    centred, off = NutStation(11), NutStation(11)
    pick_off_centre(centred, 0.0)
    pick_off_centre(off, 0.002)
    assert centred.arms["left"].grip_quality == pytest.approx(1.0) and np.allclose(centred.arms["left"].nut_offset, 0.0)
    arm = off.arms["left"]
    assert arm.grip_quality == pytest.approx(1 - (0.002 / 0.0025) ** 2)
    assert arm.nut_offset[0] == pytest.approx(-0.002 * 0.2, abs=1e-6)  # the jaws pull it most of the way in
    assert arm.nut is not None and np.allclose(arm.nut.position[:2], arm.position[:2] + arm.nut_offset)
    # A jerk a centred grasp survives drops the edge-gripped nut.
    for station in (centred, off):
        action = Expert.action(station)
        action[0:3] = station.arms["left"].velocity + np.array([0.06, 0.0, 0.0])  # 1.8 m/s² for one period
        station.step(action)
    assert not centred.outcome.done
    assert off.outcome.failure_mode == "dropped_nut" and "gripped" in off.outcome.detail


def test_meeting_the_hole_while_still_moving_sideways_cross_threads() -> None:
    station = NutStation(11)
    drive_until(station, lambda s: left_phase(s) == "align" and s.arms["left"].position[2] < 0.0245
                and np.linalg.norm(s.arms["left"].position[:2] - s.target_hole("left")) < 0.0005)
    while not station.outcome.done and left_phase(station) == "align":
        action = Expert.action(station)
        action[0:3] = (0.015, 0.0, -0.01)  # sliding in at 15 mm/s
        station.step(action)
    assert station.outcome.failure_mode in ("cross_threaded", "misaligned_nut")
    assert station.outcome.failure_mode == "cross_threaded", station.outcome.detail


def test_each_hole_seats_with_its_own_stiffness_from_the_seed() -> None:
    a, b = NutStation(3), NutStation(3)
    assert a.seat_stiffness == b.seat_stiffness
    values = [v for seed in range(40) for side in NutStation(seed).seat_stiffness.values() for v in side]
    assert min(values) < 8.0 < 16.0 < max(values)  # soft and stiff castings both occur
    # The pose and feeder draws of a seed do not depend on the stiffness draws.
    assert np.allclose(NutStation(3).part_centre, a.part_centre)


def test_a_protective_stop_never_drops_an_edge_gripped_nut() -> None:
    station = NutStation(11)
    pick_off_centre(station, 0.002)
    arm = station.arms["left"]
    for step in range(1, 60):  # carry it away at 0.5 m/s², within what the grasp holds
        action = np.zeros(10)
        action[3] = action[8] = 1.0
        action[1] = min(0.04, 0.5 * step * DT)
        station.step(action)
    assert arm.nut is not None and np.linalg.norm(arm.velocity) > 0.03
    while np.linalg.norm(arm.velocity) > 0:
        station.hold()
        assert not station.outcome.done, station.outcome
    assert arm.nut is not None and arm.nut.state == "held"


def test_the_scripted_supervisor_takes_the_faulted_driver_first() -> None:
    from foreman_sim.supervisor import choose_arm

    station = NutStation(11)
    assert choose_arm(station) == "left"  # nothing installed: left first
    station.arms["left"].installed = 1
    assert choose_arm(station) == "right"  # the arm furthest behind
    station.arms["left"].torque = 9.2
    assert choose_arm(station) == "left"  # the driver over its limit is why the robot stopped

