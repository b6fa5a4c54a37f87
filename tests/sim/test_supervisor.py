"""The scripted supervisor's eyes: which arm it takes over, and when it sees a pick going wrong."""

from __future__ import annotations

import numpy as np

from foreman_sim.expert import Expert
from foreman_sim.station import NutStation
from foreman_sim.supervisor import PICK_WATCH_HEIGHT_M, PICK_WATCH_OFFSET_M, choose_arm, pick_going_wrong


def descend_on_the_left_nut(offset_m: float) -> NutStation:
    """The expert drives both arms; the left one comes down on its feeder nut `offset_m` off centre."""
    station = NutStation(11)
    for _ in range(3000):
        arm = station.arms["left"]
        nut = arm.feeder_nut
        assert nut is not None and not station.outcome.done
        if arm.position[2] < PICK_WATCH_HEIGHT_M * 2 and np.linalg.norm(arm.position[:2] - nut.position[:2]) < 0.003:
            break
        station.step(Expert.action(station))
    arm = station.arms["left"]
    assert arm.feeder_nut is not None
    arm.position[:2] = arm.feeder_nut.position[:2] + np.array([offset_m, 0.0])
    return station


def lower(station: NutStation, height_m: float) -> None:
    station.arms["left"].position[2] = height_m


def test_a_pick_coming_down_off_centre_is_seen_before_the_gripper_closes() -> None:
    station = descend_on_the_left_nut(PICK_WATCH_OFFSET_M * 2)
    lower(station, PICK_WATCH_HEIGHT_M * 2)
    assert pick_going_wrong(station) is None  # still high above it: nothing to see yet
    lower(station, PICK_WATCH_HEIGHT_M / 2)
    assert pick_going_wrong(station) == "left"
    station.arms["left"].grip_command = 1.0  # closing has begun: too late for a takeover to centre it
    assert pick_going_wrong(station) is None


def test_a_centred_pick_and_a_carried_nut_are_left_alone() -> None:
    station = descend_on_the_left_nut(PICK_WATCH_OFFSET_M / 2)
    lower(station, PICK_WATCH_HEIGHT_M / 2)
    assert pick_going_wrong(station) is None
    for _ in range(3000):  # the expert picks it up: a held nut is not a pick
        if station.arms["left"].nut is not None:
            break
        station.step(Expert.action(station))
    assert station.arms["left"].nut is not None and pick_going_wrong(station) != "left"


def test_choose_arm_prefers_an_over_torque_driver_then_the_arm_furthest_behind() -> None:
    station = NutStation(3)
    assert choose_arm(station) == "left"  # both at nut 1, empty-handed: the first
    station.arms["left"].installed = 1
    assert choose_arm(station) == "right"
    station.arms["left"].torque = 9.2
    assert choose_arm(station) == "left"
    station.arms["left"].installed = station.arms["right"].installed = 2
    assert choose_arm(station) is None


def test_a_pick_taken_over_is_centred_before_the_gripper_closes() -> None:
    from foreman_sim.supervisor import CAREFUL_PICK_M

    station = descend_on_the_left_nut(0.001)  # 1 mm off: the expert's own tolerance would close here
    lower(station, 0.0005)
    assert Expert.teleop_command(station, "left").grip == "close"
    careful = Expert.teleop_command(station, "left", CAREFUL_PICK_M)
    assert careful.grip == "open" and careful.vx < 0  # it moves over the nut's centre first
    for _ in range(300):
        if station.arms["left"].nut is not None:
            break
        action = Expert.action(station)
        action[0:5] = Expert.teleop_command(station, "left", CAREFUL_PICK_M).as_action()
        station.step(action)
    assert station.arms["left"].nut is not None and station.arms["left"].grip_quality > 0.95
