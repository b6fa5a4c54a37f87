"""The agent's monotonic clock: a sped-up sim can change rate (a person drives at real time) and be
held back (the CPU cannot keep up), and robot time never goes back."""

from __future__ import annotations

import pytest

import robot_agent.clock as clock_module
from robot_agent.clock import MonotonicClock


@pytest.fixture
def wall(monkeypatch):  # type: ignore[no-untyped-def]
    now = [100.0]
    monkeypatch.setattr(clock_module.time, "monotonic", lambda: now[0])
    return now


def test_rate_changes_keep_robot_time_continuous(wall):  # type: ignore[no-untyped-def]
    clock = MonotonicClock(8.0)
    wall[0] += 1.0
    assert clock.now() == pytest.approx(8.0)
    clock.set_time_scale(1.0)  # a person takes over
    assert clock.now() == pytest.approx(8.0)
    wall[0] += 2.0
    assert clock.now() == pytest.approx(10.0)
    clock.set_time_scale(8.0)
    wall[0] += 0.5
    assert clock.now() == pytest.approx(14.0)
    with pytest.raises(ValueError):
        clock.set_time_scale(0.0)


def test_held_back_time_waits_but_never_goes_back(wall):  # type: ignore[no-untyped-def]
    clock = MonotonicClock(8.0)
    wall[0] += 1.0
    assert clock.now() == pytest.approx(8.0)  # a late control tick read 8.0
    clock.hold_back(7.5)  # it was due at 7.5: the sim waits for the loop
    assert clock.now() == pytest.approx(8.0)  # what was read stays the latest
    wall[0] += 0.125  # 1.0 s of robot time from 7.5
    assert clock.now() == pytest.approx(8.5)
    readings = []
    for _ in range(5):
        clock.hold_back(clock.now() - 0.3)
        wall[0] += 0.01
        readings.append(clock.now())
    assert readings == sorted(readings)
