"""The aiortc/aioice internals robot_agent/aiortc_internals.py relies on are still there: these fail
when an upgrade moves them (rather than frame_clock or the loopback-only ICE going quietly wrong)."""

from __future__ import annotations

import asyncio
import inspect

import aioice.ice
import pytest
from aiortc import RTCPeerConnection, RTCRtpSender
from aiortc.mediastreams import VIDEO_CLOCK_RATE, VIDEO_PTIME, VideoStreamTrack

from robot_agent import aiortc_internals
from robot_agent.aiortc_internals import (
    ENCODER_ATTRIBUTE,
    KEYFRAME_METHOD,
    RTP_TASK_ATTRIBUTE,
    TIMESTAMP_ORIGIN_LOCAL,
    on_keyframe_request,
    receiver_estimate_bps,
    rtp_timestamp_origin,
    use_loopback_ice,
)


@pytest.fixture
def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aioice.ice, "get_host_addresses", aioice.ice.get_host_addresses)  # undone after the test
    use_loopback_ice()


def test_the_patched_aioice_function_keeps_its_signature_and_is_looked_up_at_call_time() -> None:
    assert list(inspect.signature(aioice.ice.get_host_addresses).parameters) == ["use_ipv4", "use_ipv6"]
    # A global looked up when candidates are gathered, not imported into another module.
    assert "get_host_addresses(" in inspect.getsource(aioice.ice.Connection.gather_candidates)
    assert "get_host_addresses" in aioice.ice.Connection.gather_candidates.__code__.co_names


async def test_loopback_ice_gathers_only_loopback_host_candidates(loopback_ice: None) -> None:
    connection = aioice.ice.Connection(ice_controlling=True)
    try:
        await connection.gather_candidates()
        assert connection.local_candidates
        assert {c.host for c in connection.local_candidates} == {"127.0.0.1"}
    finally:
        await connection.close()


async def test_the_rtp_timestamp_origin_is_readable_on_a_real_sender(loopback_ice: None) -> None:
    assert "_run_rtp" in vars(RTCRtpSender)
    assert TIMESTAMP_ORIGIN_LOCAL in RTCRtpSender._run_rtp.__code__.co_varnames
    sending, receiving = RTCPeerConnection(), RTCPeerConnection()
    try:
        pts_step = int(VIDEO_PTIME * VIDEO_CLOCK_RATE)  # its frames' pts: 0, 3000, 6000, ... at 90 kHz
        sender = sending.addTrack(VideoStreamTrack())
        await sending.setLocalDescription(await sending.createOffer())
        await receiving.setRemoteDescription(sending.localDescription)
        await receiving.setLocalDescription(await receiving.createAnswer())
        await sending.setRemoteDescription(receiving.localDescription)
        # The sender notes the timestamp of each RTP packet it sends (for its sender reports; 0 before).
        for _ in range(200):
            last_sent = sender._RTCRtpSender__rtp_timestamp  # type: ignore[attr-defined]  # aiortc private, what this test checks
            if last_sent:
                break
            await asyncio.sleep(0.1)
        assert isinstance(last_sent, int) and last_sent, "no RTP packet sent in 20 s"

        assert getattr(sender, RTP_TASK_ATTRIBUTE, None) is not None
        origin = rtp_timestamp_origin(sender)
        assert isinstance(origin, int)
        # The origin means what frame_clock takes it for: RTP timestamp = origin + pts (mod 2^32), give
        # or take the one 90 kHz tick (11 µs) that the encoder's time-base conversion rounds away on
        # some frames (measured: 2999, 6000, 9000, 11999, ...).
        pts = (last_sent - origin) % 2**32
        nearest_frame = round(pts / pts_step) * pts_step
        assert abs(pts - nearest_frame) <= 1 and pts < VIDEO_CLOCK_RATE * 20, (pts, pts_step)
    finally:
        await sending.close()
        await receiving.close()


async def test_the_receivers_estimate_and_its_keyframe_requests_reach_the_sender(loopback_ice: None) -> None:
    """A REMB from the receiver lands on the sender's encoder (readable through receiver_estimate_bps),
    and a PLI calls what on_keyframe_request hooked in, as well as aiortc's own keyframe request."""
    from aiortc.rtp import RTCP_PSFB_APP, RTCP_PSFB_PLI, RtcpPsfbPacket, pack_remb_fci

    assert KEYFRAME_METHOD in vars(RTCRtpSender)
    sending, receiving = RTCPeerConnection(), RTCPeerConnection()
    try:
        sender = sending.addTrack(VideoStreamTrack())
        requests: list[str] = []
        on_keyframe_request(sender, lambda: requests.append("keyframe"))
        assert receiver_estimate_bps(sender) is None  # no encoder before the first frame
        await sending.setLocalDescription(await sending.createOffer())
        await receiving.setRemoteDescription(sending.localDescription)
        await receiving.setLocalDescription(await receiving.createAnswer())
        await sending.setRemoteDescription(receiving.localDescription)
        for _ in range(200):
            if getattr(sender, ENCODER_ATTRIBUTE, None) is not None:
                break
            await asyncio.sleep(0.1)
        assert isinstance(receiver_estimate_bps(sender), int), "no encoder in 20 s"

        ssrc = sender._ssrc  # aiortc private: the media the packets are about
        await sender._handle_rtcp_packet(RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=1, media_ssrc=0, fci=pack_remb_fci(400_000, [ssrc])))
        assert receiver_estimate_bps(sender) == 400_000
        await sender._handle_rtcp_packet(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=ssrc))
        assert requests == ["keyframe"]
        assert sender._RTCRtpSender__force_keyframe is True  # type: ignore[attr-defined]  # aiortc's own request still made
    finally:
        await sending.close()
        await receiving.close()


def test_the_module_is_the_only_reader_of_the_internals() -> None:
    from pathlib import Path

    agent = Path(aiortc_internals.__file__).parent
    private = ("_RTCRtpSender", "f_locals", "import aioice", "from aioice")
    readers = sorted(p.name for p in agent.glob("*.py")
                     if p.name != "aiortc_internals.py" and any(needle in p.read_text() for needle in private))
    assert readers == []
