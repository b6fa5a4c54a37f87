"""Clocks: the control loop asks a Clock for time and sleeps on it, so tests can use a fake one."""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod

# asyncio's timers wake on epoll's whole milliseconds: a 0.3 ms sleep lasts about 1.1 ms.
TIMER_RESOLUTION_S = 0.0012


class Clock(ABC):
    """Robot time in seconds (monotonic). `time_scale` > 1 makes robot time run faster than wall time."""

    @abstractmethod
    def now(self) -> float: ...

    @abstractmethod
    async def sleep_until(self, t: float) -> None: ...


class MonotonicClock(Clock):
    def __init__(self, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be > 0")
        self.time_scale = time_scale
        self._origin = time.monotonic()
        self._offset = 0.0  # robot time at _origin
        self._last = 0.0  # never go back, even after hold_back()

    def now(self) -> float:
        self._last = max(self._last, self._offset + (time.monotonic() - self._origin) * self.time_scale)
        return self._last

    def hold_back(self, t: float) -> None:
        """Let robot time resume from `t` (≤ now): a sped-up simulation the CPU cannot keep up with
        waits for its control loop instead of skipping control periods. Time read before stays the
        latest (now() never goes back); it moves on once the clock passes it again."""
        wall = time.monotonic()
        self._offset, self._origin = min(t, self.now()), wall

    def set_time_scale(self, time_scale: float) -> None:
        """Change the rate from now on; robot time stays continuous."""
        if time_scale <= 0:
            raise ValueError("time_scale must be > 0")
        if time_scale != self.time_scale:
            wall = time.monotonic()
            self._offset += (wall - self._origin) * self.time_scale
            self._origin, self.time_scale = wall, time_scale

    async def sleep_until(self, t: float) -> None:
        delay = (t - self.now()) / self.time_scale
        if self.time_scale <= 1.0:
            await asyncio.sleep(max(0.0, delay))
            return
        # A sped-up sim's control period (0.83 ms at 40×) is shorter than the event loop's timer
        # resolution: on timers alone every tick would last ≥ 1.1 ms and robot time would run at
        # 25× instead of 40×. The event loop sleeps what its timers can, the thread the rest
        # (other tasks wait at most TIMER_RESOLUTION_S).
        if delay > TIMER_RESOLUTION_S:
            await asyncio.sleep(delay - TIMER_RESOLUTION_S)
        else:
            await asyncio.sleep(0)
        rest = (t - self.now()) / self.time_scale
        if rest > 0:
            time.sleep(rest)


class FakeClock(Clock):
    """Advances only when told to (or when something sleeps on it)."""

    def __init__(self, start: float = 0.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt

    async def sleep_until(self, t: float) -> None:
        self.t = max(self.t, t)
        await asyncio.sleep(0)
