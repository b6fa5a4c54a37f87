"""Cameras: MediaPlayer sources, the capture-time bar code through a real codec, frame dropping."""

from __future__ import annotations

import asyncio
import time
from fractions import Fraction

import av
import numpy as np
import pytest

from robot_agent.cameras import Camera, CameraError, CameraHub, PlayerCamera, read_stamp, stamp_frame


def write_clip(path, frames: int = 20, size: tuple[int, int] = (320, 240)) -> None:  # type: ignore[no-untyped-def]
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


@pytest.mark.parametrize("codec", ["libvpx", "libx264"])
def test_stamp_survives_encoding(codec):
    capture_ms = time.time() * 1000
    image = np.random.default_rng(1).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    stamped = stamp_frame(image, capture_ms)
    encoder = av.CodecContext.create(codec, "w")
    encoder.width, encoder.height, encoder.pix_fmt = 640, 480, "yuv420p"
    encoder.time_base = Fraction(1, 30)
    encoder.options = {"crf": "40"} if codec == "libx264" else {"b": "300k"}
    decoder = av.CodecContext.create("vp8" if codec == "libvpx" else "h264", "r")
    decoded = []
    for frame in [av.VideoFrame.from_ndarray(stamped, format="rgb24").reformat(format="yuv420p"), None]:
        for packet in encoder.encode(frame):
            decoded += decoder.decode(packet)
    decoded += decoder.decode(None) if codec == "libx264" else []
    assert decoded and read_stamp(decoded[0].to_ndarray(format="gray")) == int(capture_ms)


class SlowCamera(Camera):
    def __init__(self) -> None:
        self.name = "slow"
        self.reads = 0

    async def read(self, full_size: bool = True) -> np.ndarray:
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
