"""Agent ↔ viewer over real aiortc peers on loopback-only ICE: video frames decode, frame_clock and
pong arrive, data-channel teleop moves the robot, the deadman stops it, bad messages are counted."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from foreman_protocol.messages import LeaseInfo, RobotSignal, VideoWants, ViewerSignal, parse_agent_to_viewer
from robot_agent.cameras import read_stamp, stamp_frame
from tests.agent.station import ConfidencePolicy, KinematicStation, make_agent
from tests.servers import eventually


class ViewerPeer:
    """What the dashboard does, in Python: recvonly video per camera + a `teleop` data channel."""

    def __init__(self, cameras: int) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        for _ in range(cameras):
            self.pc.addTransceiver("video", direction="recvonly")
        self.teleop = self.pc.createDataChannel("teleop", ordered=False, maxRetransmits=0)
        self.messages: list[dict[str, Any]] = []
        self.frames: dict[int, int] = {}
        self.stamp_lag_ms: list[float] = []
        self.stamps: list[int | None] = []  # every 5th frame's bar code; None: damaged, rejected
        self.drawn_ms: set[int] = set()  # capture times the agent stamped (filled by agent_with_viewer)
        self.codecs: set[str] = set()
        self.sizes: set[tuple[int, int]] = set()
        self.latest_size: dict[int, tuple[int, int]] = {}
        self.tasks: list[asyncio.Task[None]] = []

        @self.pc.on("datachannel")
        def on_channel(channel: Any) -> None:
            channel.on("message", self._received)

        self.teleop.on("message", self._received)

        @self.pc.on("track")
        def on_track(track: Any) -> None:
            index = len(self.frames)
            self.frames[index] = 0
            self.tasks.append(asyncio.create_task(self._consume(index, track)))

    def _received(self, raw: str) -> None:
        parse_agent_to_viewer(raw)  # what the agent sends a viewer is the protocol's pong or frame_clock
        self.messages.append(json.loads(raw))

    async def _consume(self, index: int, track: Any) -> None:
        while True:
            frame = await track.recv()
            self.frames[index] += 1
            self.sizes.add((frame.width, frame.height))
            self.latest_size[index] = (frame.width, frame.height)
            if self.frames[index] % 5 == 0:
                stamp = read_stamp(frame.to_ndarray(format="gray"))
                self.stamps.append(stamp)
                if stamp is not None:
                    self.stamp_lag_ms.append(time.time() * 1000 - stamp)

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await self.pc.close()

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]


def lease(mode: str = "teleop") -> LeaseInfo:
    expires = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
    return LeaseInfo(id=str(uuid.uuid4()), holder="operator", mode=mode, expires_at=expires, ttl_s=5.0)


@pytest.fixture
async def agent_with_viewer(tmp_path, monkeypatch):
    import robot_agent.webrtc as webrtc

    drawn_ms: set[int] = set()

    def recording_stamp(image: np.ndarray, capture_ms: float) -> np.ndarray:
        drawn_ms.add(int(capture_ms))
        return stamp_frame(image, capture_ms)

    monkeypatch.setattr(webrtc, "stamp_frame", recording_stamp)
    station = KinematicStation(cycle_steps=100_000)
    agent = make_agent("http://127.0.0.1:9", "frt_unused", tmp_path / "state", station, ConfidencePolicy(), stamp_frames=True)
    signals: list[dict[str, Any]] = []

    async def capture(message: RobotSignal) -> None:
        signals.append(message.model_dump(mode="json"))

    agent.gateway.send_signal = capture
    agent.loop.online = True
    await agent.hub.start()
    control = asyncio.create_task(agent.loop.run(stop=lambda: agent._stopping))
    viewer = ViewerPeer(cameras=len(station.cameras))
    viewer.drawn_ms = drawn_ms
    try:
        started = time.monotonic()
        await agent.gateway.handle_signal(ViewerSignal(type="signal", peer="viewer-1", kind="offer", sdp=await viewer.offer()))
        answer = next(m for m in signals if m["kind"] == "answer")
        await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        await eventually(lambda: viewer.teleop.readyState == "open", timeout=10, what="data channel open")
        connect_ms = (time.monotonic() - started) * 1000
        yield agent, station, viewer, connect_ms
    finally:
        await viewer.close()
        agent.stop()
        await asyncio.wait_for(control, timeout=5)
        await agent.gateway.close_all()
        await agent.hub.stop()
        agent.recorder.close()


@contextlib.asynccontextmanager
async def standalone_agent(tmp_path: Any, **settings: Any) -> AsyncIterator[tuple[Any, list[RobotSignal]]]:
    """A real agent's cameras and WebRTC gateway, no server: the signals it sends are collected."""
    agent = make_agent("http://127.0.0.1:9", "frt_unused", tmp_path / "state", KinematicStation(cycle_steps=100_000), ConfidencePolicy(),
                       **settings)
    signals: list[RobotSignal] = []

    async def capture(message: RobotSignal) -> None:
        signals.append(message)

    agent.gateway.send_signal = capture
    await agent.hub.start()
    try:
        yield agent, signals
    finally:
        await agent.gateway.close_all()
        await agent.hub.stop()
        agent.recorder.close()


async def test_video_frames_clock_and_ping(agent_with_viewer):
    agent, station, viewer, connect_ms = agent_with_viewer
    # Only loopback candidates were offered.
    answer_candidates = [line for line in viewer.pc.remoteDescription.sdp.splitlines() if line.startswith("a=candidate")]
    assert answer_candidates and all(" 127.0.0.1 " in line for line in answer_candidates)
    await eventually(lambda: len(viewer.frames) == 2 and min(viewer.frames.values()) >= 5, timeout=10, what="video frames")
    before = dict(viewer.frames)
    await asyncio.sleep(2.0)
    fps = [(viewer.frames[i] - before[i]) / 2.0 for i in before]
    lags = sorted(viewer.stamp_lag_ms)
    median = f"{lags[len(lags) // 2]:.0f}" if lags else "-"
    print(f"connect {connect_ms:.0f} ms, fps per camera {fps}, stamp lag ms {median}, {len(lags)} of {len(viewer.stamps)} stamps read")
    assert min(fps) >= 5  # 15 fps target on a shared 2-core machine; frames are dropped, never queued
    # Decoded bar code = the capture time the agent drew into that frame. A stamp damaged in transit
    # is rejected by its CRC, but most survive.
    read = [stamp for stamp in viewer.stamps if stamp is not None]
    assert read and len(read) * 2 >= len(viewer.stamps) and set(read) <= viewer.drawn_ms, (viewer.stamps, sorted(viewer.drawn_ms))
    # Live, not queued: the median, since on a loaded 2-core machine one frame was seen arriving 1.1 s late.
    assert 0 <= lags[0] and lags[len(lags) // 2] < 1000, lags

    await eventually(lambda: len(viewer.of("frame_clock")) >= 2, timeout=5, what="frame_clock")
    clock = viewer.of("frame_clock")[0]
    assert clock["camera"] in ("head", "wrist_left") and 0 <= clock["rtp_ts"] < 2**32
    assert abs(clock["capture_ms"] - time.time() * 1000) < 5000

    viewer.teleop.send(json.dumps({"type": "ping", "id": "p1", "sent_ms": 123.5}))
    await eventually(lambda: viewer.of("pong"), timeout=5, what="pong")
    pong = viewer.of("pong")[0]
    assert pong["sent_ms"] == 123.5 and pong["id"] == "p1" and pong["robot_ms"] > 0


async def test_datachannel_teleop_moves_robot_then_deadman_holds(agent_with_viewer):
    agent, station, viewer, _ = agent_with_viewer
    grant = lease()
    agent.modes.lease_granted(grant)
    assert agent.modes.mode == "teleop"
    y_before = station.position[1]
    for seq in range(1, 11):
        viewer.teleop.send(json.dumps({"type": "teleop", "lease_id": grant.id, "seq": seq, "arm": "left", "vy": 0.2}))
        await asyncio.sleep(0.03)
    await eventually(lambda: station.position[1] > y_before + 0.02, timeout=5, what="teleop motion")
    # Deadman: no command → within 200 ms (+ a tick) the robot stops moving.
    await asyncio.sleep(0.35)
    held = station.position.copy()
    await asyncio.sleep(0.3)
    assert (station.position == held).all()
    assert agent.modes.deadman_trips >= 1 and agent.loop.telemetry().warning.startswith("deadman")

    # Older seq, wrong lease and garbage are dropped and counted; the loop keeps running.
    ticks = agent.loop.stats.ticks
    viewer.teleop.send(json.dumps({"type": "teleop", "lease_id": grant.id, "seq": 3, "vy": 0.2}))
    viewer.teleop.send(json.dumps({"type": "teleop", "lease_id": str(uuid.uuid4()), "seq": 99, "vy": 0.2}))
    viewer.teleop.send("{not json")
    viewer.teleop.send(json.dumps({"type": "teleop", "lease_id": grant.id, "seq": 100, "vy": 99.0}))  # out of range
    viewer.teleop.send(json.dumps({"type": "launch_missiles"}))
    await eventually(lambda: agent.modes.dropped["old_seq"] == 1 and agent.modes.dropped["stale_lease"] == 1, timeout=5, what="drops counted")
    await eventually(lambda: agent.gateway.counters["malformed_bad_json"] == 1 and agent.gateway.counters["malformed_bad_message"] == 1
                     and agent.gateway.counters["malformed_unknown_type"] == 1, timeout=5, what="malformed counted")
    assert (station.position == held).all()
    await eventually(lambda: agent.loop.stats.ticks > ticks + 5, what="loop alive")


async def test_trickled_candidates_and_non_loopback_ones_dropped(tmp_path):
    from foreman_protocol.messages import IceCandidate

    station = KinematicStation(cycle_steps=100_000)
    agent = make_agent("http://127.0.0.1:9", "frt_unused", tmp_path / "state", station, ConfidencePolicy())
    signals: list[dict[str, Any]] = []

    async def capture(message: RobotSignal) -> None:
        signals.append(message.model_dump(mode="json"))

    agent.gateway.send_signal = capture
    await agent.hub.start()
    viewer = ViewerPeer(cameras=1)
    try:
        sdp = await viewer.offer()
        lines = sdp.splitlines()
        candidates = [line[2:] for line in lines if line.startswith("a=candidate:")]
        bare = "\r\n".join(line for line in lines if not line.startswith("a=candidate:")) + "\r\n"
        # A LAN address in the offer itself is dropped before setRemoteDescription.
        assert "a=end-of-candidates" in bare
        lan = bare.replace("a=end-of-candidates", "a=candidate:1 1 udp 2130706431 192.168.1.5 40000 typ host")  # trickle: not the end
        # As the agent does: one task per relayed signal, in arrival order. Trickled: a LAN
        # candidate (dropped, counted) and the real loopback ones.
        messages = [ViewerSignal(type="signal", peer="v2", kind="offer", sdp=lan),
                    ViewerSignal(type="signal", peer="v2", kind="ice", candidate=IceCandidate(
                        candidate="candidate:9 1 udp 2130706431 10.0.0.7 40001 typ host", sdpMid="0", sdpMLineIndex=0))]
        messages += [ViewerSignal(type="signal", peer="v2", kind="ice", candidate=IceCandidate(candidate=c, sdpMid="0", sdpMLineIndex=0))
                     for c in candidates]
        tasks = [asyncio.create_task(agent.gateway.handle_signal(m)) for m in messages]
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
        answer = next(m for m in signals if m["kind"] == "answer")
        assert "192.168.1.5" not in agent.gateway.viewers["v2"].pc.remoteDescription.sdp
        assert agent.gateway.counters["non_loopback_candidate"] == 1
        await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        await eventually(lambda: viewer.frames.get(0, 0) >= 3, timeout=10, what="frames over trickled candidates")
    finally:
        await viewer.close()
        await agent.gateway.close_all()
        await agent.hub.stop()
        agent.recorder.close()


async def test_several_viewers_of_one_camera_share_its_frames_safely(agent_with_viewer):
    """VideoFrames gives every viewer's encoder the same converted frame, each encoding in its own
    thread; a frame any encoder had to convert would share one swscale context across threads (a
    segfault with two viewers, seen in the demo). Four viewers at once must all keep decoding."""
    agent, station, first, _ = agent_with_viewer
    signals: list[dict[str, Any]] = []

    async def capture(message: RobotSignal) -> None:
        signals.append(message.model_dump(mode="json"))

    agent.gateway.send_signal = capture
    viewers = [ViewerPeer(cameras=1) for _ in range(3)]
    try:
        for index, viewer in enumerate(viewers):
            peer = f"viewer-extra-{index}"
            await agent.gateway.handle_signal(ViewerSignal(type="signal", peer=peer, kind="offer", sdp=await viewer.offer()))
            answer = next(m for m in signals if m["kind"] == "answer" and m["peer"] == peer)
            await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        await eventually(lambda: all(v.frames.get(0, 0) >= 30 for v in [first, *viewers]), timeout=30, what="30 frames on every viewer")
        before = [v.frames[0] for v in [first, *viewers]]
        await asyncio.sleep(1.0)
        assert all(v.frames[0] > b for v, b in zip([first, *viewers], before, strict=True))  # all still decoding
    finally:
        for viewer in viewers:
            await viewer.close()


async def test_garbage_offers_end_only_their_own_viewer(agent_with_viewer, monkeypatch):
    """Bad SDP gets a `bye` for that peer and a counter; an offer broken deeper down (truncated, a
    bogus fingerprint) may get an answer but never a lasting slot; the other viewer carries on."""
    import robot_agent.webrtc as webrtc

    monkeypatch.setattr(webrtc, "CONNECT_TIMEOUT_S", 1.0)
    agent, station, viewer, _ = agent_with_viewer
    signals: list[dict[str, Any]] = []

    async def capture(message: RobotSignal) -> None:
        signals.append(message.model_dump(mode="json"))

    agent.gateway.send_signal = capture
    real = await ViewerPeer(cameras=1).offer()
    garbage = [
        "garbage",
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n",  # no media at all
        real.replace("a=ice-ufrag:", "a=ice-ufrag-broken:"),
        "\x00\x01\x02" * 100,
    ]
    before = agent.gateway.counters["bad_offer"]
    for index, sdp in enumerate(garbage):
        peer = f"bad-{index}"
        await agent.gateway.handle_signal(ViewerSignal(type="signal", peer=peer, kind="offer", sdp=sdp))
        assert not any(m.get("kind") == "answer" and m["peer"] == peer for m in signals), sdp[:40]
        assert peer not in agent.gateway.viewers
        assert any(m.get("kind") == "bye" and m["peer"] == peer for m in signals)
    assert agent.gateway.counters["bad_offer"] - before == len(garbage)
    broken = [real[: len(real) // 2], real.replace("a=fingerprint:sha-256", "a=fingerprint:sha-999")]
    for index, sdp in enumerate(broken):
        await agent.gateway.handle_signal(ViewerSignal(type="signal", peer=f"broken-{index}", kind="offer", sdp=sdp))
    await eventually(lambda: not any(p.startswith("broken-") for p in agent.gateway.viewers), timeout=15, what="broken offers closed")
    frames = viewer.frames.get(0, 0)
    await eventually(lambda: viewer.frames.get(0, 0) > frames + 10, timeout=10, what="the good viewer keeps decoding")


async def test_an_answered_viewer_that_never_connects_frees_its_slot(agent_with_viewer, monkeypatch):
    import robot_agent.webrtc as webrtc

    monkeypatch.setattr(webrtc, "CONNECT_TIMEOUT_S", 1.0)
    agent, station, viewer, _ = agent_with_viewer
    signals: list[dict[str, Any]] = []

    async def capture(message: RobotSignal) -> None:
        signals.append(message.model_dump(mode="json"))

    agent.gateway.send_signal = capture
    silent = ViewerPeer(cameras=1)  # offers, but never applies the answer: ICE never starts
    try:
        await agent.gateway.handle_signal(ViewerSignal(type="signal", peer="silent", kind="offer", sdp=await silent.offer()))
        assert any(m.get("kind") == "answer" and m["peer"] == "silent" for m in signals)
        await eventually(lambda: "silent" not in agent.gateway.viewers, timeout=10, what="the silent viewer closed")
        assert agent.gateway.counters["connect_timeout"] == 1
        # The slot is freed first; the bye follows once its peer connection has closed.
        await eventually(lambda: any(m.get("kind") == "bye" and m["peer"] == "silent" for m in signals), timeout=10,
                         what="a bye to the silent viewer")
        assert "viewer-1" in agent.gateway.viewers  # the connected one stays
    finally:
        await silent.close()


async def test_a_robot_with_every_viewer_slot_taken_says_it_is_full(agent_with_viewer):
    agent, station, viewer, _ = agent_with_viewer
    agent.gateway.max_viewers = 1  # the fixture's viewer holds the one slot
    signals: list[RobotSignal] = []

    async def capture(message: RobotSignal) -> None:
        signals.append(message)

    agent.gateway.send_signal = capture
    late = ViewerPeer(cameras=1)
    try:
        await agent.gateway.handle_signal(ViewerSignal(peer="late", kind="offer", sdp=await late.offer()))
        assert [(m.peer, m.kind, m.reason, m.detail) for m in signals] == [("late", "bye", "full", "1 viewer")]
        assert agent.gateway.counters["viewers_refused"] == 1 and "late" not in agent.gateway.viewers
    finally:
        await late.close()


async def test_each_viewer_gets_the_width_and_rate_it_asked_for(tmp_path):
    """A fleet tile asks for 320 px at 10 fps, the robot page for full size: each gets that, the
    camera is captured once at the largest width and the highest rate asked, a camera nobody
    watches stays at the recording rate and size, and the plan falls back as viewers leave."""
    async with standalone_agent(tmp_path, camera_size=(640, 480), video_fps=30.0) as (agent, signals):
        hub = agent.hub
        tile, page = ViewerPeer(cameras=1), ViewerPeer(cameras=1)  # one m=video: the head camera only
        try:
            assert hub.capture_plan("head") == (5.0, (320, 240))  # recording only
            for peer, viewer, video in (("tile", tile, VideoWants(width=320, fps=10)), ("page", page, None)):
                await agent.gateway.handle_signal(ViewerSignal(peer=peer, kind="offer", sdp=await viewer.offer(), video=video))
                answer = next(m for m in signals if m.kind == "answer" and m.peer == peer)
                await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=answer.sdp or "", type="answer"))
            await eventually(lambda: tile.frames.get(0, 0) >= 10 and page.frames.get(0, 0) >= 10, timeout=30, what="frames on both viewers")
            assert hub.capture_plan("head") == (30.0, (640, 480))
            assert hub.capture_plan("wrist_left") == (5.0, (320, 240))  # nobody watches it
            start_tile, start_page, started = tile.frames[0], page.frames[0], time.monotonic()
            await asyncio.sleep(3.0)
            elapsed = time.monotonic() - started
            tile_fps, page_fps = (tile.frames[0] - start_tile) / elapsed, (page.frames[0] - start_page) / elapsed
            assert tile.sizes == {(320, 240)} and page.sizes == {(640, 480)}
            assert tile_fps <= 12.0, tile_fps  # never more than it asked for (10), whatever the camera runs at
            assert page_fps > tile_fps, (page_fps, tile_fps)
            await agent.gateway.close_viewer("page")
            assert hub.capture_plan("head") == (10.0, (320, 240))
            await agent.gateway.close_viewer("tile")
            assert hub.capture_plan("head") == (5.0, (320, 240)) and not hub.demands
        finally:
            await tile.close()
            await page.close()


async def test_the_robot_sends_the_codec_it_is_configured_to_prefer(tmp_path):
    """--video-codecs h264: the answer offers H.264 only, and its frames decode (VP8 stays the default)."""
    async with standalone_agent(tmp_path, video_codecs=("h264",)) as (agent, signals):
        viewer = ViewerPeer(cameras=1)
        try:
            await agent.gateway.handle_signal(ViewerSignal(peer="v", kind="offer", sdp=await viewer.offer()))
            answer = next(m for m in signals if m.kind == "answer").sdp or ""
            video = answer.split("m=video", 1)[1].split("m=", 1)[0]
            codecs = {line.split()[1].split("/")[0] for line in video.splitlines() if line.startswith("a=rtpmap:")}
            assert codecs == {"H264"}, codecs
            await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            await eventually(lambda: viewer.frames.get(0, 0) >= 10, timeout=30, what="H.264 frames decoded")
        finally:
            await viewer.close()


async def test_every_camera_at_once_and_a_layout_resizes_them_without_renegotiating(tmp_path):
    """The robot page takes every camera (one track each) and says which is big: the agent resizes
    each track from the next frame on, on the same peer connection."""
    async with standalone_agent(tmp_path, camera_size=(640, 480), video_fps=30.0) as (agent, signals):
        viewer = ViewerPeer(cameras=2)  # head and wrist_left, both recvonly
        try:
            await agent.gateway.handle_signal(ViewerSignal(peer="page", kind="offer", sdp=await viewer.offer()))
            answer = next(m for m in signals if m.kind == "answer")
            await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=answer.sdp or "", type="answer"))
            await eventually(lambda: viewer.teleop.readyState == "open" and len(viewer.latest_size) == 2, timeout=30, what="both cameras")
            assert set(viewer.latest_size.values()) == {(640, 480)}
            layout = {"type": "video_layout", "cameras": {"head": {"width": 640, "fps": 30}, "wrist_left": {"width": 320, "fps": 10}}}
            viewer.teleop.send(json.dumps(layout))
            await eventually(lambda: viewer.latest_size.get(1) == (320, 240), timeout=15, what="the wrist camera as a thumbnail")
            assert viewer.latest_size[0] == (640, 480) and agent.gateway.counters["video_layout"] == 1
            assert agent.hub.capture_plan("wrist_left") == (10.0, (320, 240)) and agent.hub.capture_plan("head") == (30.0, (640, 480))
            swapped = {"type": "video_layout", "cameras": {"head": {"width": 320, "fps": 10}, "wrist_left": {"width": 640, "fps": 30}}}
            viewer.teleop.send(json.dumps(swapped))
            await eventually(lambda: viewer.latest_size.get(0) == (320, 240) and viewer.latest_size.get(1) == (640, 480), timeout=15,
                             what="big and small swapped")
            assert [m.kind for m in signals] == ["answer"]  # no renegotiation
        finally:
            await viewer.close()


async def test_a_viewers_picture_loss_gets_a_keyframe_and_its_stream_keeps_to_its_budget(tmp_path):
    """The agent encodes each stream itself (robot_agent/encoding.py): a PLI the viewer sends over the
    wire reopens that viewer's encoder (a keyframe), and the stream's bitrate is its bits-per-pixel
    budget or the viewer's estimate (REMB) when that is lower."""
    from robot_agent.aiortc_internals import receiver_estimate_bps

    async with standalone_agent(tmp_path, camera_size=(640, 480), video_fps=30.0, video_bits_per_pixel=0.05) as (agent, signals):
        viewer = ViewerPeer(cameras=1)
        try:
            await agent.gateway.handle_signal(ViewerSignal(peer="v", kind="offer", sdp=await viewer.offer(), video=VideoWants(width=320, fps=15)))
            answer = next(m for m in signals if m.kind == "answer")
            await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=answer.sdp or "", type="answer"))
            await eventually(lambda: viewer.frames.get(0, 0) >= 10, timeout=30, what="frames decoded")
            track = agent.gateway.viewers["v"].tracks[0]
            assert track.encoder is not None and track.encoder.mime_type == "video/vp8"
            estimate = receiver_estimate_bps(track.transceiver.sender)
            assert estimate is not None and estimate >= 250_000  # aiortc keeps VP8's estimate within 250 kbit/s…1.5 Mbit/s
            assert track.bitrate == int(0.05 * 320 * 240 * 15)  # the budget, 57.6 kbit/s: below any estimate
            opened, received = track.encoder.opened, viewer.frames[0]
            receiver = viewer.pc.getTransceivers()[0].receiver
            await receiver._send_rtcp_pli(track.transceiver.sender._ssrc)  # aiortc private: what a decoder that lost a packet sends
            await eventually(lambda: track.encoder is not None and track.encoder.opened == opened + 1, timeout=10, what="a keyframe")
            await eventually(lambda: viewer.frames[0] >= received + 10, timeout=10, what="frames after the keyframe")
        finally:
            await viewer.close()
