"""Every place the agent relies on aiortc's or aioice's private internals, and only those.

Neither library offers these as API, so an upgrade may break them silently: a changed local name
would turn frame_clock off, a renamed function would let real interfaces' candidates through.
tests/agent/test_aiortc_internals.py checks each one against the installed versions (on a real
loopback connection) and fails when they move; look here first after upgrading aiortc or aioice
(checked with aiortc 1.16, pinned in requirements.txt, and the aioice 0.13 it brings).
"""

from __future__ import annotations

from collections.abc import Callable

import aioice.ice
from aiortc import RTCRtpSender

# The name-mangled attribute of RTCRtpSender holding the task that runs `_run_rtp`.
RTP_TASK_ATTRIBUTE = "_RTCRtpSender__rtp_task"
# The local of `RTCRtpSender._run_rtp` with the random RTP timestamp origin (RFC 3550 §5.1).
TIMESTAMP_ORIGIN_LOCAL = "timestamp_origin"
# The name-mangled attribute of RTCRtpSender holding its codec's encoder, whose `target_bitrate`
# aiortc sets from the receiver's REMB (it creates one even for a track that yields packets).
ENCODER_ATTRIBUTE = "_RTCRtpSender__encoder"
# The method RTCRtpSender calls on a PLI or FIR from the receiver.
KEYFRAME_METHOD = "_send_keyframe"


def use_loopback_ice() -> None:
    """Offer only 127.0.0.1 host candidates: aioice.ice.Connection.gather_candidates looks up the
    module's get_host_addresses(use_ipv4, use_ipv6) at call time, so replacing it is enough."""
    def loopback_addresses(use_ipv4: bool = True, use_ipv6: bool = True) -> list[str]:
        return ["127.0.0.1"]

    aioice.ice.get_host_addresses = loopback_addresses


def rtp_timestamp_origin(sender: RTCRtpSender) -> int | None:
    """The random RTP timestamp origin aiortc keeps in a local of the sender's RTP task, so
    frame_clock can name real RTP timestamps. None if it is not (yet) there."""
    task = getattr(sender, RTP_TASK_ATTRIBUTE, None)
    coro = task.get_coro() if task is not None and hasattr(task, "get_coro") else None
    frame = getattr(coro, "cr_frame", None)
    if frame is None:
        return None
    value = frame.f_locals.get(TIMESTAMP_ORIGIN_LOCAL)
    return value if isinstance(value, int) else None


def receiver_estimate_bps(sender: RTCRtpSender) -> int | None:
    """The receiver's latest bitrate estimate (REMB) as aiortc keeps it on the sender's encoder,
    within that encoder's own limits; None before the sender has sent its first frame."""
    value = getattr(getattr(sender, ENCODER_ATTRIBUTE, None), "target_bitrate", None)
    return value if isinstance(value, int) else None


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Call `callback` too whenever the receiver asks this sender for a keyframe (PLI/FIR): aiortc
    only passes the request to its own encoder, and a track that encodes its frames itself must
    hear it, or a lost packet freezes the picture until the next keyframe."""
    forward = getattr(sender, KEYFRAME_METHOD)

    def requested() -> None:
        forward()
        callback()

    setattr(sender, KEYFRAME_METHOD, requested)
