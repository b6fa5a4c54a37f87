"""Live-video encoding done by the agent itself, so each stream gets the bitrate it needs.

aiortc would encode a track's frames with its own encoders, whose bitrate follows only the
receiver's estimate (REMB): on loopback or a plant LAN that climbs to their maximum (1.5 Mbit/s
VP8, 3 Mbit/s H.264) whatever the picture or its size (seen: Chromium's estimate took a
640×480 VP8 stream to 1.42–1.5 Mbit/s). A `CameraTrack` instead hands aiortc `av.Packet`s from a `StreamEncoder`, which aiortc
sends as they are (RTCRtpSender packs pre-encoded data without re-encoding it). The bitrate is the
stream's budget — bits per pixel × width × height × frame rate — or the receiver's estimate when
that is lower (congestion still slows the stream down).

Why a budget: the simulated head camera at 640×480@30 decodes at 41.6 dB PSNR at the default
budget (553 kbit/s) and 41.5 dB at 1.5 Mbit/s, for 1.3 against 2.0 ms of encode a frame and a third
of the packets (bench video, `encode`); the default 0.06 leaves real cameras with texture some room,
and `--video-bits-per-pixel` raises it. The receiver's estimate, as aiortc keeps it, stays within
its encoder's limits (VP8: 250 kbit/s to 1.5 Mbit/s).
"""

from __future__ import annotations

import fractions
from collections.abc import Iterable

import av

BITS_PER_PIXEL = 0.06
MIN_BITRATE = 30_000  # below this a keyframe alone overflows the rate buffer
CODEC_NAMES = {"video/vp8": "libvpx", "video/h264": "libx264"}  # by lower-case mime type
RATE_CHANGE = 0.1  # reopen the encoder (a keyframe) only for a bitrate change above 10%, as aiortc does
TIME_BASE = fractions.Fraction(1, 90_000)  # the frames' (VideoFrames): the RTP video clock


def stream_bitrate(width: int, height: int, fps: float, *, bits_per_pixel: float, ceiling: int | None = None) -> int:
    """Bits per second for a stream: its budget, or the receiver's estimate when that is lower."""
    budget = int(bits_per_pixel * width * height * fps)
    if ceiling is not None:
        budget = min(budget, ceiling)
    return max(MIN_BITRATE, budget)


class StreamEncoder:
    """One stream's encoder: VP8 (libvpx) or H.264 (libx264, Baseline, zerolatency) through PyAV,
    with aiortc's own real-time settings, at a bitrate set per frame. Frames go in as yuv420p at the
    stream's size; packets come out with the frame's pts and time base. Used from one thread at a time."""

    def __init__(self, mime_type: str) -> None:
        if mime_type.lower() not in CODEC_NAMES:
            raise ValueError(f"no encoder for {mime_type!r}; one of {', '.join(CODEC_NAMES)}")
        self.mime_type = mime_type.lower()
        self.codec: av.VideoCodecContext | None = None
        self.bitrate = 0  # the open encoder's
        self.opened = 0  # times the encoder was (re)opened: each starts with a keyframe

    def encode(self, frame: av.VideoFrame, bitrate: int, *, keyframe: bool = False) -> list[av.Packet]:
        """`keyframe` reopens the encoder, whose first frame is one: the frame itself is shared with
        other viewers' encoders in other threads and is never changed (no pict_type)."""
        codec = self.codec
        if codec is not None and (keyframe or frame.width != codec.width or frame.height != codec.height
                                  or abs(bitrate - self.bitrate) / self.bitrate > RATE_CHANGE):
            codec = None
        if codec is None:
            codec = self.codec = self._open(frame.width, frame.height, bitrate)
        packets = list(codec.encode(frame))
        for packet in packets:
            packet.pts, packet.time_base = frame.pts, frame.time_base or TIME_BASE  # one frame in, its packet out (no lag)
        return packets

    def _open(self, width: int, height: int, bitrate: int) -> av.VideoCodecContext:
        self.opened += 1
        self.bitrate = bitrate
        codec = av.CodecContext.create(CODEC_NAMES[self.mime_type], "w")
        assert isinstance(codec, av.VideoCodecContext)
        codec.width, codec.height, codec.pix_fmt, codec.bit_rate = width, height, "yuv420p", bitrate
        codec.time_base = TIME_BASE
        if self.mime_type == "video/vp8":  # aiortc's Vp8Encoder settings (aiortc/codecs/vpx.py)
            codec.gop_size = 3000
            codec.qmin, codec.qmax = 2, 56
            codec.options = {
                "bufsize": str(bitrate), "cpu-used": "-6", "deadline": "realtime", "lag-in-frames": "0",
                "minrate": str(bitrate), "maxrate": str(bitrate),  # CBR
                "noise-sensitivity": "4", "overshoot-pct": "15", "partitions": "0", "static-thresh": "1", "undershoot-pct": "100",
            }
            codec.thread_count = 1
        else:  # aiortc's H264Encoder settings (aiortc/codecs/h264.py)
            codec.framerate = fractions.Fraction(30, 1)
            codec.options = {"level": "31", "tune": "zerolatency"}
            codec.profile = "Baseline"
        return codec


def joined(packets: Iterable[av.Packet]) -> av.Packet | None:
    """The packets of one frame as one packet (libx264 may split a frame), or None when the
    encoder held the frame back."""
    packets = list(packets)
    if not packets:
        return None
    if len(packets) == 1:
        return packets[0]
    merged = av.Packet(b"".join(bytes(packet) for packet in packets))
    merged.pts, merged.time_base = packets[0].pts, packets[0].time_base
    return merged
