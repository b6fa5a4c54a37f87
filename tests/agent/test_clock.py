"""The agent's monotonic clock: a sped-up sim can change rate (a person drives at real time) and be
held back (the CPU cannot keep up), and robot time never goes back."""

from __future__ import annotations

import pytest

import robot_agent.clock as clock_module
from robot_agent.clock import MonotonicClock


@pytest.fixture
def wall(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(clock_module.time, "monotonic", lambda: now[0])
    return now


def test_rate_changes_keep_robot_time_continuous(wall):
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


def test_held_back_time_waits_but_never_goes_back(wall):
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


class SleepLog:
    """The clock's two ways to wait, recorded; each advances the fake wall clock by what it slept."""

    def __init__(self, wall: list[float]) -> None:
        self.wall = wall
        self.timer: list[float] = []  # event loop timer sleeps (1 ms resolution on Linux)
        self.thread: list[float] = []  # precise thread sleeps

    async def asyncio_sleep(self, seconds: float) -> None:
        self.timer.append(seconds)
        self.wall[0] += seconds

    def time_sleep(self, seconds: float) -> None:
        self.thread.append(seconds)
        self.wall[0] += seconds


@pytest.fixture
def sleeps(wall, monkeypatch):
    log = SleepLog(wall)
    monkeypatch.setattr(clock_module.asyncio, "sleep", log.asyncio_sleep)
    monkeypatch.setattr(clock_module.time, "sleep", log.time_sleep)
    return log


def test_a_sped_up_clock_sleeps_below_the_timer_resolution_precisely(wall, sleeps):
    import asyncio

    clock = MonotonicClock(40.0)
    period = 1 / 30  # 0.83 ms of wall time at 40×: shorter than the event loop's timers can sleep
    asyncio.run(clock.sleep_until(clock.now() + period))
    assert sleeps.timer == [0] and sleeps.thread == [pytest.approx(period / 40)]
    assert clock.now() == pytest.approx(period)
    start = clock.now()
    asyncio.run(clock.sleep_until(start + 0.2))  # 5 ms of wall time: the timer sleeps what it can, the thread the rest
    assert sleeps.timer[-1] == pytest.approx(0.005 - clock_module.TIMER_RESOLUTION_S)
    assert sleeps.thread[-1] == pytest.approx(clock_module.TIMER_RESOLUTION_S)
    assert clock.now() == pytest.approx(start + 0.2)


def test_a_real_time_clock_only_sleeps_on_the_event_loop(wall, sleeps):
    import asyncio

    clock = MonotonicClock(1.0)
    asyncio.run(clock.sleep_until(clock.now() + 1 / 30))
    asyncio.run(clock.sleep_until(clock.now() - 0.5))  # late: no wait at all
    assert sleeps.timer == [pytest.approx(1 / 30), 0.0] and sleeps.thread == []
