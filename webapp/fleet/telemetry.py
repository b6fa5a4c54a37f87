"""Telemetry fan-out: the latest frame per robot in this process, flushed to the fleet group every interval.

Robots send telemetry at their own rate; dashboards get at most one batch per interval with each
robot's newest frame, and the same frames go to the cache for the API's /robots (TELEMETRY_CACHE_KEY).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache

from webapp.fleet import realtime
from webapp.fleet.selectors import TELEMETRY_CACHE_KEY

log = logging.getLogger(__name__)


class TelemetryBatcher:
    """Latest telemetry per robot in this process, flushed to the fleet group every interval."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.pending: dict[str, dict[str, Any]] = {}
        self.task: asyncio.Task[None] | None = None

    def put(self, robot: str, body: dict[str, Any]) -> None:
        self.pending[robot] = body
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        layer = get_channel_layer()
        idle_rounds = 0
        while idle_rounds < 50:  # stop after 5 s of silence; the next put restarts it
            await asyncio.sleep(self.interval_s)
            if not self.pending:
                idle_rounds += 1
                continue
            idle_rounds = 0
            batch, self.pending = self.pending, {}
            try:
                await layer.group_send(realtime.FLEET_GROUP, realtime.fleet_telemetry_event(batch))
                await cache.aset_many({TELEMETRY_CACHE_KEY.format(name): body for name, body in batch.items()}, timeout=600)
            except Exception:  # a Redis hiccup must not kill the flusher for good
                log.exception("telemetry flush failed")


# One batcher per event loop: a task belongs to the loop that made it (tests run several loops).
_batchers: dict[int, TelemetryBatcher] = {}


def telemetry_batcher() -> TelemetryBatcher:
    loop = asyncio.get_running_loop()
    batcher = _batchers.get(id(loop))
    if batcher is None or (batcher.task is not None and batcher.task.get_loop() is not loop):
        batcher = _batchers[id(loop)] = TelemetryBatcher(settings.FOREMAN_TELEMETRY_FLUSH_S)
    return batcher
