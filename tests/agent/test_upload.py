"""Episodes of failed/intervened cycles spool to disk while the server is down and upload once it is back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import pyarrow.parquet as pq
import pytest
from channels.db import database_sync_to_async

from tests.agent.station import ConfidencePolicy, KinematicStation, make_agent
from tests.conftest import wait_for_servers_to_settle
from tests.servers import eventually

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def server_settles_before_flush(transactional_db: Any) -> Iterator[None]:
    """The daphne server is still writing what a test's closed sockets caused (robot offline, audit
    rows); under load the flush's TRUNCATE raced those writes and deadlocked."""
    yield
    wait_for_servers_to_settle()


async def test_spool_during_outage_then_upload(fleet, own_daphne, daphne_env, tmp_path):
    from webapp.fleet.models import EpisodeUpload

    station = KinematicStation(cycle_steps=45, succeed=False, failure_mode="cross_threaded")  # 1.5 s failing cycles
    state_dir = tmp_path / "r3"
    agent = make_agent(own_daphne.url, fleet.tokens["r3"], state_dir, station, ConfidencePolicy(), max_cycles=2)
    task = asyncio.create_task(agent.run())
    try:
        await eventually(lambda: agent.link.is_connected and agent.loop.cycle is not None, what="first cycle")
        own_daphne.stop()  # outage mid-cycle: the cycle finishes offline (offline policy "finish")
        await eventually(lambda: not agent.link.is_connected, what="link down")
        spool = state_dir / "spool"
        await eventually(lambda: any((p / "metadata.json").exists() for p in spool.iterdir()), timeout=10, what="episode spooled")
        episode_dir = next(p for p in spool.iterdir() if (p / "metadata.json").exists())
        metadata = json.loads((episode_dir / "metadata.json").read_text())
        assert metadata["outcome"] == "failure" and metadata["failure_mode"] == "cross_threaded"
        assert metadata["cameras"] == ["head", "wrist_left"] and metadata["steps"] >= 40
        await asyncio.sleep(1.5)  # the uploader tries and fails meanwhile; nothing is lost
        assert agent.uploader.failures >= 1 and episode_dir.exists()
        assert agent.loop.cycle is None and agent.loop.cycle_count == 1  # no new cycle while offline

        own_daphne.start()
        await eventually(lambda: agent.link.is_connected, timeout=15, what="reconnect")
        await eventually(lambda: not episode_dir.exists(), timeout=15, what="upload after the outage")
        episode = metadata["episode"]
        upload = await database_sync_to_async(lambda: EpisodeUpload.objects.select_related("episode").get(episode_id=episode))()
        assert upload.metadata["steps"] == metadata["steps"]
        assert set(upload.files) == {"steps", "video_head", "video_wrist_left"}
        stored = Path(daphne_env["FOREMAN_MEDIA_ROOT"]) / upload.directory
        table = pq.read_table(stored / "steps.parquet")
        assert table.num_rows == metadata["steps"]
        assert {"t", "phase", "mode", "action_mode", "state", "action", "confidence", "torque_nm"} <= set(table.column_names)
        with av.open(str(stored / "head.mp4")) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264" and (stream.width, stream.height) == (320, 240)
            assert sum(1 for _ in container.decode(stream)) >= 3
        # The second cycle (started after reconnect) is a failure too: it is uploaded as well.
        await eventually(lambda: agent.uploader.uploaded >= 2, timeout=15, what="second upload")
    finally:
        agent.stop()
        await asyncio.wait_for(task, timeout=15)
    assert await database_sync_to_async(EpisodeUpload.objects.count)() == 2


async def test_spool_survives_agent_restart(fleet, daphne, tmp_path):
    """An episode spooled by an agent that then died is uploaded by the next agent process."""
    from webapp.fleet.models import EpisodeUpload

    station = KinematicStation(cycle_steps=30, succeed=False)
    state_dir = tmp_path / "r2"
    first = make_agent(daphne.url, fleet.tokens["r2"], state_dir, station, ConfidencePolicy(), max_cycles=1)
    first.uploader.base_url = "http://127.0.0.1:9"  # its uploads fail; then it is stopped
    task = asyncio.create_task(first.run())
    spool = state_dir / "spool"
    await eventually(lambda: any((p / "metadata.json").exists() for p in spool.iterdir()), timeout=15, what="episode spooled")
    first.stop()
    await asyncio.wait_for(task, timeout=15)
    spooled = [p for p in spool.iterdir() if (p / "metadata.json").exists()]
    assert len(spooled) == 1
    assert json.loads((spooled[0] / "metadata.json").read_text())["cameras"] == ["head", "wrist_left"]

    agent = make_agent(daphne.url, fleet.tokens["r2"], state_dir, KinematicStation(cycle_steps=10_000), ConfidencePolicy())
    task = asyncio.create_task(agent.run())
    try:
        await eventually(lambda: agent.uploader.uploaded == 1, timeout=15, what="upload of the old spool")
    finally:
        agent.stop()
        await asyncio.wait_for(task, timeout=15)
    assert await database_sync_to_async(EpisodeUpload.objects.filter(episode_id=spooled[0].name).exists)()
