"""Cameras: MediaPlayer sources, the capture-time bar code through a real codec, frame dropping."""

from __future__ import annotations

import asyncio
import time
from fractions import Fraction

import av
import numpy as np
import pytest
from aiortc.codecs.vpx import Vp8Decoder, Vp8Encoder, vp8_depayload
from aiortc.jitterbuffer import JitterFrame

from robot_agent.cameras import STAMP_BITS, STAMP_VALUE_BITS, Camera, CameraError, CameraHub, PlayerCamera, read_stamp, stamp_frame, stamp_layout


def write_clip(path, frames: int = 20, size: tuple[int, int] = (320, 240)) -> None:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(20))
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            image = np.full((size[1], size[0], 3), (i * 10) % 255, np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


async def test_player_camera_reads_a_video_file_at_640x480(tmp_path):
    clip = tmp_path / "clip.mp4"
    write_clip(clip)
    camera = PlayerCamera("head", str(clip))
    await camera.start()
    try:
        images = [await asyncio.wait_for(camera.read(), timeout=5) for _ in range(5)]
    finally:
        await camera.stop()
    assert all(image.shape == (480, 640, 3) and image.dtype == np.uint8 for image in images)


async def test_unknown_sources_are_refused(tmp_path):
    with pytest.raises(CameraError, match="unknown camera source"):
        await PlayerCamera("head", str(tmp_path / "missing.mp4")).start()
    bogus = tmp_path / "not-video.mp4"
    bogus.write_bytes(b"hello")
    with pytest.raises(CameraError, match="cannot open"):
        await PlayerCamera("head", str(bogus)).start()


@pytest.mark.parametrize("size", [(640, 480), (160, 120)])  # the agent's and the tests' cameras
@pytest.mark.parametrize("codec", ["libvpx", "libx264"])
def test_stamp_survives_encoding(codec, size):
    capture_ms = time.time() * 1000
    image = np.random.default_rng(1).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    stamped = stamp_frame(image, capture_ms)
    encoder = av.CodecContext.create(codec, "w")
    encoder.width, encoder.height, encoder.pix_fmt = size[0], size[1], "yuv420p"
    encoder.time_base = Fraction(1, 30)
    encoder.options = {"crf": "40"} if codec == "libx264" else {"b": "300k"}
    decoder = av.CodecContext.create("vp8" if codec == "libvpx" else "h264", "r")
    decoded = []
    for frame in [av.VideoFrame.from_ndarray(stamped, format="rgb24").reformat(format="yuv420p"), None]:
        for packet in encoder.encode(frame):
            decoded += decoder.decode(packet)
    decoded += decoder.decode(None) if codec == "libx264" else []
    assert decoded and read_stamp(decoded[0].to_ndarray(format="gray")) == int(capture_ms)


@pytest.mark.parametrize("size", [(640, 480), (160, 120)])
def test_stamp_survives_aiortcs_vp8_encoder_on_a_still_scene(size):
    """aiortc's VP8 settings (noise-sensitivity, static-thresh) keep the previous frame's pixels in a
    macroblock that changed only in part: cells smaller than a macroblock (8 px) were stale in a
    third of these frames. Whole-macroblock cells come through in every frame."""
    encoder, decoder = Vp8Encoder(), Vp8Decoder()
    start_ms = time.time() * 1000
    for index in range(45):
        image = np.zeros((size[1], size[0], 3), np.uint8)
        image[size[1] // 2 :, :, 2] = 80  # the test station's picture: mostly still
        image[:, 3 * index : 3 * index + 8, 1] = 255
        capture_ms = int(start_ms + index * 66.7)
        frame = av.VideoFrame.from_ndarray(stamp_frame(image, capture_ms), format="rgb24").reformat(format="yuv420p")
        frame.pts, frame.time_base = index * 6000, Fraction(1, 90_000)
        payloads, timestamp = encoder.encode(frame, force_keyframe=index == 0)
        data = b"".join(vp8_depayload(payload) for payload in payloads)
        pictures = decoder.decode(JitterFrame(data=data, timestamp=timestamp))
        assert [read_stamp(p.to_ndarray(format="gray")) for p in pictures] == [capture_ms], index


def test_damaged_stamps_are_rejected_not_misread():
    capture_ms = time.time() * 1000
    stamped = stamp_frame(np.zeros((120, 160, 3), np.uint8), capture_ms)
    assert read_stamp(stamped) == int(capture_ms)
    cell, columns = stamp_layout(160)
    for index in (0, 7, STAMP_VALUE_BITS - 1, STAMP_VALUE_BITS + 3, STAMP_BITS - 1):  # one cell flipped, in the value or the CRC
        damaged = stamped.copy()
        top, left = (index // columns) * cell, (index % columns) * cell
        damaged[top : top + cell, left : left + cell] ^= 255
        assert read_stamp(damaged) is None, index
    smudged = stamped.copy()
    smudged[:cell, cell : 2 * cell] = 128  # neither black nor white
    assert read_stamp(smudged) is None
    assert read_stamp(np.zeros((120, 160, 3), np.uint8)) is None  # no stamp at all
    assert read_stamp(np.full((120, 160, 3), 255, np.uint8)) is None


def test_stamp_is_read_back_nearest_the_readers_clock():
    wrap = 2**STAMP_VALUE_BITS * 104_000  # an epoch millisecond whose low 24 bits are all 0
    stamped = stamp_frame(np.zeros((120, 160, 3), np.uint8), wrap - 3)
    assert read_stamp(stamped, near_ms=wrap - 3) == wrap - 3
    assert read_stamp(stamped, near_ms=wrap + 500) == wrap - 3  # read just after the low bits wrapped
    assert read_stamp(stamped, near_ms=wrap - 3_600_000) == wrap - 3


@pytest.mark.parametrize("size", [(640, 480), (160, 120)])
def test_vp8_frames_decoded_without_their_reference_are_rejected_not_misread(size):
    """What a lost frame under load does (seen in CI as a stamp 160 ms in the future): the next
    VP8 frames decode onto an older picture. Every stamp read must be the true capture time or
    None (the old 48 thin blocks read 31 of these 38 frames at 640×480, 33 at 160×120, as wrong
    times)."""
    rng = np.random.default_rng(7)
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = size[0], size[1], "yuv420p"
    encoder.time_base, encoder.bit_rate, encoder.thread_count = Fraction(1, 15), 250_000, 1  # aiortc's lowest bitrate
    encoder.options = {"deadline": "realtime", "cpu-used": "-6", "lag-in-frames": "0"}
    decoder = av.CodecContext.create("vp8", "r")
    image = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    start_ms = time.time() * 1000
    read: list[int | None] = []
    for index in range(40):
        image = np.roll(image, 2, axis=1)  # a moving scene: inter frames carry residuals
        capture_ms = int(start_ms + index * 66.7 + rng.integers(0, 30))
        frame = av.VideoFrame.from_ndarray(stamp_frame(image, capture_ms), format="rgb24").reformat(format="yuv420p")
        frame.pts = index
        for packet in encoder.encode(frame):
            if index in (5, 20):
                continue  # lost: later frames reference a picture the decoder never saw
            try:
                decoded = decoder.decode(packet)
            except av.error.InvalidDataError:
                continue
            for picture in decoded:
                stamp = read_stamp(picture.to_ndarray(format="gray"))
                assert stamp in (capture_ms, None), (index, stamp, capture_ms)
                read.append(stamp)
    assert None not in read[:5] and len(read) > 10  # intact before the first loss; frames after it were read


class SlowCamera(Camera):
    def __init__(self) -> None:
        self.name = "slow"
        self.size = (4, 4)
        self.reads = 0

    async def read(self, size: tuple[int, int] | None = None) -> np.ndarray:
        self.reads += 1
        await asyncio.sleep(0.1)  # a 10 fps camera asked for 50 fps
        return np.zeros((4, 4, 3), np.uint8)


async def test_hub_drops_frames_instead_of_queueing():
    camera = SlowCamera()
    hub = CameraHub([camera], video_fps=50, idle_fps=50)
    await hub.start()
    try:
        await asyncio.sleep(0.55)
        frame = await hub.next_frame("slow", -1, timeout=1)
        assert frame is not None
        assert time.monotonic() - frame.capture_monotonic < 0.15  # the latest, not a backlog
        assert 4 <= camera.reads <= 7  # paced by the camera, no catch-up burst
        assert await hub.next_frame("slow", frame.index + 100, timeout=0.05) is None  # bounded wait
    finally:
        await hub.stop()
