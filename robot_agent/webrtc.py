"""Live video and the teleop data channel over WebRTC (aiortc).

One RTCPeerConnection per viewer, with one `CameraTrack` per camera it watches, at the width and
rate its offer asked for (`video`); the CameraHub captures each camera once for all of them, and
`VideoFrames` converts each frame once per width, and each track encodes it at its own bitrate
budget (robot_agent/encoding.py; a PLI from the viewer asks for a keyframe). The browser sends an `offer` through the server's signal relay, the
agent answers with complete ICE (aiortc gathers during setLocalDescription). Video m-lines in the
offer get the agent's cameras in `hello.cameras` order. Data channels:
- `teleop` (opened by the viewer, unordered, maxRetransmits 0): TeleopCommand and ping → pong;
- `clock` (opened by the agent): `frame_clock` once a second per video track, mapping RTP
  timestamps to capture time.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import av
from aiortc import RTCConfiguration, RTCIceServer, RTCIceTransportPolicy, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, VideoStreamTrack
from aiortc.sdp import SessionDescription, candidate_from_sdp
from av.video.reformatter import VideoReformatter

from foreman_protocol import ProtocolError, parse_datachannel_message
from foreman_protocol.messages import ByeReason, FrameClock, IceCandidate, Pong, RobotSignal, VideoWants, ViewerSignal, dump_message
from robot_agent.aiortc_internals import on_keyframe_request, receiver_estimate_bps, rtp_timestamp_origin, use_loopback_ice
from robot_agent.cameras import CameraHub, Frame, scaled_size, stamp_frame
from robot_agent.encoding import BITS_PER_PIXEL, StreamEncoder, joined, stream_bitrate

log = logging.getLogger(__name__)

VIDEO_CLOCK_RATE = 90_000
LOOPBACK_HOSTS = ("127.0.0.1", "::1")
VIEWER_CHANNELS = ("teleop", "view")  # a page that may not drive opens `view` (layout, pings)
MAX_VIEWERS = 8  # default: each viewer is its own encode on the robot (peer to peer)
NEGOTIATION_TIMEOUT_S = 10.0
FIRST_WIDE_FRAME_S = 1.0  # how long a new viewer waits for frames as wide as it asked before taking narrower ones
CONNECT_TIMEOUT_S = 20.0  # answered but never connected: the slot is freed (MAX_VIEWERS is small)


def looks_like_offer(sdp: str) -> bool:
    """The parts every real WebRTC offer has; aiortc would answer far less (even plain text) with an
    empty session that never connects and holds a viewer slot."""
    lines = sdp.replace("\r\n", "\n").split("\n")
    return (bool(lines) and lines[0].strip() == "v=0" and any(line.startswith("m=") for line in lines)
            and any(line.startswith("a=ice-ufrag:") for line in lines) and any(line.startswith("a=ice-pwd:") for line in lines)
            and any(line.startswith("a=fingerprint:") for line in lines))
PREFERRED_CODECS = ("video/VP8", "video/H264")  # VP8: lowest sender CPU and display latency here (bench video)


def is_loopback_ice_url(url: str) -> bool:
    """stun:/turn:/turns: URL whose host is 127.0.0.1, [::1] or localhost."""
    scheme, _, rest = url.partition(":")
    if scheme not in ("stun", "stuns", "turn", "turns"):
        return False
    host = rest.split("?", 1)[0]
    host = host[1:].split("]", 1)[0] if host.startswith("[") else host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return host in ("127.0.0.1", "::1", "localhost")


def keep_loopback_candidates(sdp: str) -> str:
    """Drop remote a=candidate lines that are not loopback (also mDNS .local names, so aioice never
    opens its mDNS socket)."""
    lines = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            parts = line.split()
            if len(parts) < 5 or parts[4] not in LOOPBACK_HOSTS:
                continue
        lines.append(line)
    return "\r\n".join(lines) + "\r\n"


class VideoFrames:
    """Camera frames as the encoders take them (yuv420p at a viewer's width, a 90 kHz pts from one
    origin), converted once per frame and width however many viewers share them.

    Called from the viewers' encoding threads. Each (camera, width) has its own lock and its own
    swscale context (a VideoReformatter kept across frames: a new frame's own reformat builds a new
    context every time, 0.5 ms of 1.7 at 640×480); the converted frame is read, never changed, by
    every encoder that shares it."""

    def __init__(self, hub: CameraHub, *, stamp: bool = False) -> None:
        self.hub = hub
        self.stamp = stamp
        self.origin = time.monotonic()
        self._latest: dict[tuple[str, int], tuple[int, av.VideoFrame]] = {}
        self._converters: dict[tuple[str, int], tuple[threading.Lock, VideoReformatter]] = {}
        self._converters_lock = threading.Lock()

    def convert(self, camera: str, frame: Frame, width: int) -> av.VideoFrame:
        key = (camera, width)
        with self._converters_lock:
            lock, reformatter = self._converters.setdefault(key, (threading.Lock(), VideoReformatter()))
        with lock:
            cached = self._latest.get(key)
            if cached is not None and cached[0] == frame.index:
                return cached[1]
            image = stamp_frame(frame.image, frame.capture_ms) if self.stamp else frame.image
            out_w, out_h = scaled_size((image.shape[1], image.shape[0]), width)
            video = reformatter.reformat(av.VideoFrame.from_ndarray(image, format="rgb24"), width=out_w, height=out_h, format="yuv420p")
            video.pts = int((frame.capture_monotonic - self.origin) * VIDEO_CLOCK_RATE)
            video.time_base = fractions.Fraction(1, VIDEO_CLOCK_RATE)
            self._latest[key] = (frame.index, video)
            return video


class CameraTrack(VideoStreamTrack):
    """One viewer's view of one camera: the camera's latest frames, at most `width` wide and `fps`
    a second, timestamped with their capture time, encoded here (robot_agent/encoding.py) at the
    stream's bitrate budget or the receiver's estimate if lower; aiortc sends the packets as they
    are. While it is being read, the hub captures this camera at least that wide and that often."""

    def __init__(self, frames: VideoFrames, camera: str, *, width: int, fps: float, bits_per_pixel: float = BITS_PER_PIXEL) -> None:
        super().__init__()
        self.frames = frames
        self.camera = camera
        self.width = width
        self.fps = fps
        self.bits_per_pixel = bits_per_pixel
        self.pc: RTCPeerConnection | None = None  # set with its transceiver: the negotiated codec is read from them
        self.transceiver: Any = None
        self.encoder: StreamEncoder | None = None
        self.keyframe_wanted = False
        self.bitrate = 0  # of the latest frame, bits per second
        self.last_index = -1
        self.last_sent_at = -1e9
        self.sent = 0
        self.latest_pts: int | None = None
        self.latest_capture_ms = 0.0
        self._demand: int | None = None
        self._wide_enough_by = 0.0

    async def recv(self) -> av.Packet:  # type: ignore[override]  # aiortc sends packets from a track as they are
        hub = self.frames.hub
        if self.readyState != "live":
            raise MediaStreamError
        if self._demand is None:
            self._demand = hub.demand(self.camera, self.width, self.fps)
            self._wide_enough_by = time.monotonic() + FIRST_WIDE_FRAME_S
        min_gap = 0.9 / self.fps  # a camera running faster than this viewer asked: skip frames, evenly
        while True:
            frame = await hub.next_frame(self.camera, self.last_index, timeout=1.0)
            if self.readyState != "live":
                raise MediaStreamError
            if frame is None:
                continue
            self.last_index = frame.index
            if frame.image.shape[1] < self.width and time.monotonic() < self._wide_enough_by:
                continue  # captured before this viewer asked for more pixels: the next ones will have them
            if frame.capture_monotonic - self.last_sent_at < min_gap:
                continue
            self.last_sent_at = frame.capture_monotonic
            if self.encoder is None:
                self.encoder = StreamEncoder(negotiated_codec(self.pc, self.transceiver))
            keyframe, self.keyframe_wanted = self.keyframe_wanted, False
            ceiling = receiver_estimate_bps(self.transceiver.sender) if self.transceiver is not None else None
            packet = await asyncio.get_running_loop().run_in_executor(None, self._encode, frame, keyframe, ceiling)
            if self.readyState != "live":
                raise MediaStreamError
            if packet is not None:
                break
        self.sent += 1
        self.latest_pts = packet.pts
        self.latest_capture_ms = frame.capture_ms
        return packet

    def _encode(self, frame: Frame, keyframe: bool, ceiling: int | None) -> av.Packet | None:
        """In an executor thread: the frame converted (shared) and encoded (this viewer's)."""
        assert self.encoder is not None
        video = self.frames.convert(self.camera, frame, self.width)
        self.bitrate = stream_bitrate(video.width, video.height, self.fps, bits_per_pixel=self.bits_per_pixel, ceiling=ceiling)
        return joined(self.encoder.encode(video, self.bitrate, keyframe=keyframe))

    def request_keyframe(self) -> None:
        self.keyframe_wanted = True

    def resize(self, width: int, fps: float) -> None:
        """Send at most `width` wide and `fps` a second from the next frame on (the encoder starts a
        new keyframe at a new size; no renegotiation)."""
        self.width, self.fps = width, fps
        if self._demand is not None:
            self.frames.hub.release(self._demand)
            self._demand = self.frames.hub.demand(self.camera, width, fps)
            self._wide_enough_by = time.monotonic() + FIRST_WIDE_FRAME_S

    def stop(self) -> None:
        super().stop()
        if self._demand is not None:
            self.frames.hub.release(self._demand)
            self._demand = None


@dataclass
class Viewer:
    peer: str
    pc: RTCPeerConnection
    senders: list[tuple[str, RTCRtpSender]]
    tracks: list[CameraTrack] = field(default_factory=list)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    clock_channel: Any = None
    remote_set: asyncio.Event = field(default_factory=asyncio.Event)  # trickled candidates wait for the offer


class WebRtcGateway:
    def __init__(
        self,
        hub: CameraHub,
        *,
        send_signal: Callable[[RobotSignal], Awaitable[Any]],
        on_teleop: Callable[[Any], str | None],
        ice_loopback: bool,
        stamp_frames: bool = False,
        max_viewers: int = MAX_VIEWERS,
        codecs: tuple[str, ...] = PREFERRED_CODECS,
        bits_per_pixel: float = BITS_PER_PIXEL,
    ) -> None:
        self.hub = hub
        self.send_signal = send_signal
        self.on_teleop = on_teleop
        self.ice_loopback = ice_loopback
        self.ice_servers: list[dict[str, Any]] = []  # from the server's welcome
        self.ice_transport_policy = "all"  # or "relay": TURN-relayed candidates only
        self.frames = VideoFrames(hub, stamp=stamp_frames)
        self.max_viewers = max_viewers
        self.codecs = codecs  # mime types, most preferred first
        self.bits_per_pixel = bits_per_pixel  # each stream's bitrate budget (robot_agent/encoding.py)
        self.viewers: dict[str, Viewer] = {}
        self.counters: Counter[str] = Counter()
        if ice_loopback:
            use_loopback_ice()

    def configuration(self) -> RTCConfiguration:
        servers = []
        for item in self.ice_servers:
            try:
                urls = [item["urls"]] if isinstance(item["urls"], str) else list(item["urls"])
                if self.ice_loopback:  # loopback only: a STUN/TURN server elsewhere is never contacted
                    urls = [url for url in urls if is_loopback_ice_url(url)]
                if urls:
                    servers.append(RTCIceServer(urls=urls, username=item.get("username"), credential=item.get("credential")))
            except (KeyError, TypeError):
                log.warning("ignoring a malformed ICE server entry from the server")
        policy = RTCIceTransportPolicy.RELAY if self.ice_transport_policy == "relay" else RTCIceTransportPolicy.ALL
        return RTCConfiguration(iceServers=servers, iceTransportPolicy=policy)

    async def handle_signal(self, message: ViewerSignal) -> None:
        if message.kind == "offer":
            await self._offer(message.peer, message.sdp or "", message.video)
        elif message.kind == "ice":
            await self._remote_candidate(message.peer, message.candidate)
        elif message.kind == "bye":
            await self.close_viewer(message.peer)

    async def _offer(self, peer: str, sdp: str, video: VideoWants | None = None) -> None:
        # Register the new viewer before the first await, so candidates relayed right behind the
        # offer find it; a new offer from the same peer replaces its old connection.
        previous = self.viewers.pop(peer, None)
        if len(self.viewers) >= self.max_viewers:
            self.counters["viewers_refused"] += 1
            detail = f"{self.max_viewers} viewer{'s' if self.max_viewers > 1 else ''}"
            await self.send_signal(RobotSignal(peer=peer, kind="bye", reason="full", detail=detail))
            return
        if not looks_like_offer(sdp):
            self.counters["negotiation_failed"] += 1
            self.counters["bad_offer"] += 1
            if previous is not None:
                await self._close(previous)
            await self.send_signal(RobotSignal(peer=peer, kind="bye", reason="bad_offer", detail="not a WebRTC offer"))
            return
        if self.ice_loopback:
            sdp = keep_loopback_candidates(sdp)
        pc = RTCPeerConnection(self.configuration())
        viewer = Viewer(peer=peer, pc=pc, senders=[])
        self.viewers[peer] = viewer
        if previous is not None:
            await self._close(previous)
        try:
            async with asyncio.timeout(NEGOTIATION_TIMEOUT_S):
                await self._negotiate(viewer, sdp, video)
        except Exception as error:  # noqa: BLE001 - a bad offer ends that viewer only
            self.counters["negotiation_failed"] += 1
            log.warning("viewer %s: negotiation failed: %s", peer, error or type(error).__name__)
            await self.close_viewer(peer, say_bye=True, reason="failed", detail=str(error or type(error).__name__)[:200])

    def capped(self, camera: str, width: int | None, fps: float | None) -> tuple[int, float]:
        """What a viewer asked for (None: everything), within the camera's own width and the video rate."""
        own_width = self.hub.cameras[camera].size[0]
        return (own_width if width is None else min(own_width, width)), (self.hub.video_fps if fps is None else min(self.hub.video_fps, fps))

    def add_camera_track(self, pc: RTCPeerConnection, camera: str, width: int | None, fps: float | None) -> tuple[CameraTrack, RTCRtpSender]:
        """A sendonly transceiver for `camera` with this agent's codec preferences. Call it before
        setRemoteDescription: aiortc ignores preferences set after it."""
        capped_width, capped_fps = self.capped(camera, width, fps)
        track = CameraTrack(self.frames, camera, width=capped_width, fps=capped_fps, bits_per_pixel=self.bits_per_pixel)
        transceiver = pc.addTransceiver(track, direction="sendonly")
        capabilities = RTCRtpSender.getCapabilities("video").codecs
        transceiver.setCodecPreferences([c for name in self.codecs for c in capabilities if c.mimeType == name])
        track.pc, track.transceiver = pc, transceiver
        on_keyframe_request(transceiver.sender, track.request_keyframe)
        return track, transceiver.sender

    async def _negotiate(self, viewer: Viewer, sdp: str, video: VideoWants | None) -> None:
        pc = viewer.pc
        video_lines = sum(1 for line in sdp.splitlines() if line.startswith("m=video"))
        # Transceivers first, then the offer.
        for camera in self.hub.names[:video_lines]:
            track, sender = self.add_camera_track(pc, camera, video.width if video else None, video.fps if video else None)
            viewer.tracks.append(track)
            viewer.senders.append((camera, sender))

        @pc.on("datachannel")
        def on_datachannel(channel: Any) -> None:
            if channel.label in VIEWER_CHANNELS:
                channel.on("message", lambda raw: self._on_datachannel_message(viewer, channel, raw))
            else:
                self.counters["unknown_channel"] += 1

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self.close_viewer(viewer.peer)

        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        viewer.remote_set.set()
        if "m=application" in sdp:
            viewer.clock_channel = pc.createDataChannel("clock", ordered=False, maxRetransmits=0)
            viewer.tasks.append(asyncio.create_task(self._frame_clock(viewer)))
        await pc.setLocalDescription(await pc.createAnswer())
        await self.send_signal(RobotSignal(peer=viewer.peer, kind="answer", sdp=pc.localDescription.sdp))
        viewer.tasks.append(asyncio.create_task(self._connect_deadline(viewer)))

    async def _connect_deadline(self, viewer: Viewer) -> None:
        await asyncio.sleep(CONNECT_TIMEOUT_S)
        if self.viewers.get(viewer.peer) is viewer and viewer.pc.connectionState != "connected":
            self.counters["connect_timeout"] += 1
            log.info("viewer %s did not connect within %.0f s: closing it", viewer.peer, CONNECT_TIMEOUT_S)
            await self.close_viewer(viewer.peer, say_bye=True, reason="timeout", detail=f"not connected within {CONNECT_TIMEOUT_S:.0f} s")

    async def _remote_candidate(self, peer: str, candidate: IceCandidate | None) -> None:
        viewer = self.viewers.get(peer)
        if viewer is None or candidate is None or not candidate.candidate:
            self.counters["candidate_ignored"] += 1
            return
        try:
            parsed = candidate_from_sdp(candidate.candidate.split(":", 1)[1] if candidate.candidate.startswith("candidate:") else candidate.candidate)
        except (ValueError, IndexError):
            self.counters["bad_candidate"] += 1
            return
        if self.ice_loopback and parsed.ip not in LOOPBACK_HOSTS:
            self.counters["non_loopback_candidate"] += 1
            return
        parsed.sdpMid = candidate.sdpMid
        parsed.sdpMLineIndex = candidate.sdpMLineIndex
        try:
            await asyncio.wait_for(viewer.remote_set.wait(), timeout=NEGOTIATION_TIMEOUT_S)
            await viewer.pc.addIceCandidate(parsed)
        except Exception as error:  # noqa: BLE001 - one bad candidate must not end anything
            self.counters["bad_candidate"] += 1
            log.info("viewer %s: candidate refused: %s", peer, error or type(error).__name__)

    def _on_datachannel_message(self, viewer: Viewer, channel: Any, raw: str | bytes) -> None:
        try:
            message = parse_datachannel_message(raw)
        except ProtocolError as error:
            self.counters[f"malformed_{error.code}"] += 1
            log.info("dropped a malformed data-channel message (%s): %s", error.code, error.message)
            return
        if message.type == "ping":
            channel.send(dump_message(Pong(id=message.id, sent_ms=message.sent_ms, robot_ms=time.time() * 1000.0)))
            return
        if message.type == "video_layout":
            self.counters["video_layout"] += 1
            for camera, track in zip((camera for camera, _ in viewer.senders), viewer.tracks, strict=True):
                wants = message.cameras.get(camera)
                if wants is not None:
                    track.resize(*self.capped(camera, wants.width, wants.fps))
            return
        if channel.label != "teleop":
            self.counters["teleop_on_view_channel"] += 1  # driving goes through the teleop channel only
            return
        self.counters["teleop_received"] += 1
        self.on_teleop(message)

    async def _frame_clock(self, viewer: Viewer) -> None:
        """Once a second per track: which RTP timestamp carries which capture time."""
        while True:
            await asyncio.sleep(1.0)
            channel = viewer.clock_channel
            if channel is None or channel.readyState != "open":
                continue
            for (camera, sender), track in zip(viewer.senders, viewer.tracks, strict=True):
                origin = rtp_timestamp_origin(sender)
                pts = track.latest_pts
                if origin is None or pts is None:
                    continue
                channel.send(dump_message(FrameClock(
                    camera=camera, mid=_mid_of(viewer.pc, sender) if sender.transport else None,
                    rtp_ts=(origin + pts) & 0xFFFFFFFF, capture_ms=track.latest_capture_ms,
                )))

    async def close_viewer(self, peer: str, say_bye: bool = False, reason: ByeReason = "closed", detail: str = "") -> None:
        viewer = self.viewers.pop(peer, None)
        if viewer is None:
            return
        await self._close(viewer)
        if say_bye:
            await self.send_signal(RobotSignal(peer=peer, kind="bye", reason=reason, detail=detail))

    async def _close(self, viewer: Viewer) -> None:
        for track in viewer.tracks:
            track.stop()  # its camera goes back to the recording rate unless someone else watches
        for task in viewer.tasks:
            if task is not asyncio.current_task():  # the connect deadline may be the one closing it
                task.cancel()
        try:
            async with asyncio.timeout(5):
                await viewer.pc.close()
        except Exception:  # closing is best effort
            log.debug("closing viewer %s failed", viewer.peer, exc_info=True)

    async def close_all(self) -> None:
        for peer in list(self.viewers):
            await self.close_viewer(peer)


def negotiated_codec(pc: RTCPeerConnection | None, transceiver: Any) -> str:
    """The mime type a sendonly transceiver sends: the first media codec of its m-line in the answer
    (ours to a browser's offer, or the video server's to ours)."""
    if pc is None or transceiver is None:
        raise MediaStreamError  # a track used outside add_camera_track
    answer = pc.localDescription if pc.localDescription is not None and pc.localDescription.type == "answer" else pc.remoteDescription
    if answer is None:
        raise MediaStreamError
    for media in SessionDescription.parse(answer.sdp).media:
        if media.kind == "video" and media.rtp.muxId == transceiver.mid:
            for codec in media.rtp.codecs:
                if codec.mimeType.lower() != "video/rtx":
                    return codec.mimeType
    raise MediaStreamError


def _mid_of(pc: RTCPeerConnection, sender: RTCRtpSender) -> str | None:
    for transceiver in pc.getTransceivers():
        if transceiver.sender is sender:
            return transceiver.mid
    return None
