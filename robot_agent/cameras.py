"""Cameras: a small Camera interface (LeRobot style), a capture hub that grabs each camera once
for every consumer (live video, recording), and the capture-time bar code used by benchmarks.

Sim cameras render the station (in a worker thread; a slow render lowers the frame rate, frames
are never queued) at the size live viewers asked for. Real cameras are aiortc `MediaPlayer` sources: a V4L2 device path, a video
file or an rtsp:// URL, given as `--camera NAME=SOURCE`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # aiortc loads only when a player camera starts
    from aiortc import MediaStreamTrack
    from aiortc.contrib.media import MediaPlayer

log = logging.getLogger(__name__)

WIDTH, HEIGHT = 640, 480
STAMP_VALUE_BITS = 24  # capture-time bar code: epoch ms mod 2**24 (4.6 h, read back nearest the reader's clock)
STAMP_BITS = STAMP_VALUE_BITS + 16  # + CRC-16
STAMP_MAX_COLUMNS = 20


class CameraError(Exception):
    """A camera source cannot be used (unknown, missing, unreadable): a one-line startup error."""


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    capture_ms: float  # Unix epoch milliseconds when the frame was captured
    capture_monotonic: float  # time.monotonic() at capture, for RTP timestamps
    index: int


class Camera(ABC):
    name: str
    size: tuple[int, int]  # (width, height) of the camera's own images
    max_fps: float | None = None  # the highest rate it is captured at, whoever asks for more

    async def start(self) -> None:
        """Open the device (may raise CameraError)."""

    @abstractmethod
    async def read(self, size: tuple[int, int] | None = None) -> np.ndarray:
        """The next image, (H, W, 3) uint8 RGB, at `size` (width, height; never larger than the
        camera's own) or the camera's own size."""

    async def stop(self) -> None:
        pass


def scaled_size(size: tuple[int, int], width: int) -> tuple[int, int]:
    """`size` scaled down to at most `width` pixels wide, aspect kept, both sides even (yuv420p)."""
    if width >= size[0]:
        return size
    height = size[1] * width / size[0]
    return max(2, width // 2 * 2), max(2, int(round(height / 2)) * 2)


class RenderedCamera(Camera):
    """A camera drawn by a renderer (the simulator), off the event loop, at the size asked for
    (rendering cost grows with pixels)."""

    def __init__(self, name: str, render: Callable[[str, tuple[int, int]], np.ndarray], size: tuple[int, int] = (WIDTH, HEIGHT),
                 max_fps: float | None = None) -> None:
        self.name = name
        self.render = render
        self.size = size
        self.max_fps = max_fps

    async def read(self, size: tuple[int, int] | None = None) -> np.ndarray:
        wanted = self.size if size is None else scaled_size(self.size, size[0])
        return await asyncio.get_running_loop().run_in_executor(None, self.render, self.name, wanted)


class PlayerCamera(Camera):
    """Any source ffmpeg can open through aiortc's MediaPlayer: /dev/videoN, a file, rtsp://…"""

    def __init__(self, name: str, source: str, size: tuple[int, int] = (WIDTH, HEIGHT)) -> None:
        self.name = name
        self.source = source
        self.size = size
        self.player: MediaPlayer | None = None
        self.track: MediaStreamTrack | None = None

    async def start(self) -> None:
        from aiortc.contrib.media import MediaPlayer

        check_camera_source(self.source)
        options: dict[str, str] = {}
        fmt = None
        if self.source.startswith("/dev/video"):
            fmt, options = "v4l2", {"video_size": f"{self.size[0]}x{self.size[1]}", "framerate": "30"}
        try:
            self.player = MediaPlayer(self.source, format=fmt, options=options, loop=Path(self.source).is_file())
        except Exception as error:  # noqa: BLE001 - av raises many kinds; all mean "cannot open"
            raise CameraError(f"camera {self.name}: cannot open {self.source!r}: {error}") from None
        if self.player.video is None:
            raise CameraError(f"camera {self.name}: {self.source!r} has no video stream")
        self.track = self.player.video

    async def read(self, size: tuple[int, int] | None = None) -> np.ndarray:
        assert self.track is not None, "start() first"
        from av import VideoFrame  # loaded with aiortc by start()

        frame = await self.track.recv()
        # A MediaPlayer's video track yields decoded frames (typed Frame | Packet, as for any track).
        if not isinstance(frame, VideoFrame):
            raise CameraError(f"camera {self.name}: {self.source!r} gave a {type(frame).__name__}, not a video frame")
        wanted = self.size if size is None else scaled_size(self.size, size[0])
        if (frame.width, frame.height) != wanted:
            frame = frame.reformat(width=wanted[0], height=wanted[1])
        return frame.to_ndarray(format="rgb24")

    async def stop(self) -> None:
        if self.track is not None:
            self.track.stop()


def check_camera_source(source: str) -> None:
    """Refuse sources that are neither an existing device/file nor a stream URL."""
    if source.startswith(("rtsp://", "rtsps://", "http://", "https://")):
        return
    if not Path(source).exists():
        raise CameraError(f"unknown camera source {source!r}: not a device, file or rtsp:// URL")


@dataclass(frozen=True)
class Demand:
    """One live consumer of a camera: frames at least `width` wide (capped at the camera's own) `fps` times a second."""

    camera: str
    width: int
    fps: float


class CameraHub:
    """One capture loop per camera, shared by every consumer. Each camera runs at the highest rate
    and the largest width its live viewers asked for (`demand`), and at the recording rate and size
    while nobody watches it; a capture that overruns its period is not made up (frames are dropped,
    never queued)."""

    def __init__(self, cameras: list[Camera], *, video_fps: float = 30.0, idle_fps: float = 10.0,
                 idle_width: int = 320) -> None:
        self.cameras = {camera.name: camera for camera in cameras}
        self.video_fps = video_fps
        self.idle_fps = idle_fps
        self.idle_width = idle_width  # what recording needs (its video is 320×240)
        self.demands: dict[int, Demand] = {}
        self.latest: dict[str, Frame] = {}
        self.captured: dict[str, int] = {name: 0 for name in self.cameras}
        self._new_frame = {name: asyncio.Condition() for name in self.cameras}
        self._tasks: list[asyncio.Task[None]] = []
        self._next_demand = 0

    @property
    def names(self) -> list[str]:
        return list(self.cameras)

    def demand(self, camera: str, width: int, fps: float) -> int:
        """Register a live consumer of `camera`; returns the handle `release` takes."""
        self._next_demand += 1
        self.demands[self._next_demand] = Demand(camera, width, fps)
        return self._next_demand

    def release(self, handle: int) -> None:
        self.demands.pop(handle, None)

    def capture_plan(self, camera: str) -> tuple[float, tuple[int, int]]:
        """(frames per second, (width, height)) this camera captures at now."""
        own = self.cameras[camera].size
        wanted = [demand for demand in self.demands.values() if demand.camera == camera]
        fps = max([self.idle_fps, *(min(demand.fps, self.video_fps) for demand in wanted)])
        cap = self.cameras[camera].max_fps
        if cap is not None:
            fps = min(fps, cap)
        width = max([self.idle_width, *(demand.width for demand in wanted)])
        return fps, scaled_size(own, width)

    async def start(self) -> None:
        for camera in self.cameras.values():
            await camera.start()
        self._tasks = [asyncio.create_task(self._capture(camera), name=f"camera-{camera.name}") for camera in self.cameras.values()]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for camera in self.cameras.values():
            await camera.stop()

    async def _capture(self, camera: Camera) -> None:
        index = 0
        failures = 0
        next_at = time.monotonic()
        while True:
            fps, size = self.capture_plan(camera.name)
            try:
                image = await camera.read(size)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - a flaky camera must not end the agent
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    log.warning("camera %s: capture failed (%d in a row): %s", camera.name, failures, error)
                await asyncio.sleep(min(2.0, 0.1 * failures))
                continue
            now = time.monotonic()
            frame = Frame(image=image, capture_ms=time.time() * 1000.0, capture_monotonic=now, index=index)
            index += 1
            self.latest[camera.name] = frame
            self.captured[camera.name] = index
            condition = self._new_frame[camera.name]
            async with condition:
                condition.notify_all()
            next_at = max(next_at + 1.0 / fps, now)  # behind schedule → start again from now
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def next_frame(self, name: str, after_index: int, timeout: float = 1.0) -> Frame | None:
        """Wait (bounded) for a frame newer than `after_index`."""
        frame = self.latest.get(name)
        if frame is not None and frame.index > after_index:
            return frame
        condition = self._new_frame[name]
        try:
            async with asyncio.timeout(timeout):
                async with condition:
                    await condition.wait_for(lambda: name in self.latest and self.latest[name].index > after_index)
        except TimeoutError:
            return None
        return self.latest[name]


# ---------------------------------------------------------------- capture-time bar code
#
# Thin blocks do not survive the trip: aiortc's VP8 settings (noise-sensitivity with static-thresh)
# leave a macroblock whose content changed only in part showing the previous frame's pixels, and a
# decoder missing a reference frame (a frame lost under load) puts new residuals on an older
# picture. So each bit is a whole number of 16×16 macroblocks, read only in its centre, and the
# stamp carries a CRC: a stamp that does not check out is rejected (None), never read as a wrong
# time.


def stamp_layout(width: int) -> tuple[int, int]:
    """(cell side in px, cells per row) for a `width`-px-wide frame: square cells of whole 16-px
    macroblocks, at most STAMP_MAX_COLUMNS to a row (640 → 32 px × 20, 320 → 16 × 20, 160 → 16 × 10)."""
    if width < 160:
        raise ValueError(f"a stamp needs an image at least 160 px wide, not {width}")
    cell = max(16, width // STAMP_MAX_COLUMNS // 16 * 16)
    return cell, min(STAMP_MAX_COLUMNS, width // cell)


def stamp_rows(width: int) -> int:
    """How many top rows of a `width`-px-wide frame the stamp covers."""
    cell, columns = stamp_layout(width)
    return cell * -(-STAMP_BITS // columns)


def _cell_origin(index: int, cell: int, columns: int) -> tuple[int, int]:
    return (index // columns) * cell, (index % columns) * cell


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (polynomial 0x1021, init 0xFFFF: an all-black stamp does not check out;
    every error of up to 3 bits is caught, nearly all larger ones too)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def _stamp_bits(value: int) -> list[int]:
    word = value % 2**STAMP_VALUE_BITS
    payload = (word << 16) | crc16(word.to_bytes(3, "big"))
    return [(payload >> (STAMP_BITS - 1 - bit)) & 1 for bit in range(STAMP_BITS)]


def stamp_frame(image: np.ndarray, capture_ms: float) -> np.ndarray:
    """Return a copy whose top stamp_rows() rows encode int(capture_ms) mod 2**24 and its CRC-16:
    STAMP_BITS square cells laid out by stamp_layout(), row-major, MSB first, white = 1."""
    out = image.copy()
    cell, columns = stamp_layout(out.shape[1])
    out[: stamp_rows(out.shape[1]), :, :] = 0
    for index, bit in enumerate(_stamp_bits(int(capture_ms))):
        if bit:
            top, left = _cell_origin(index, cell, columns)
            out[top : top + cell, left : left + cell, :] = 255
    return out


def read_stamp(image: np.ndarray, near_ms: float | None = None) -> int | None:
    """Decode stamp_frame's bar code (from an RGB or a single-channel luma image) into Unix epoch
    milliseconds: the value ≡ the stamp (mod 2**24) nearest `near_ms` (default: now; the stamp's
    24 bits span 4.6 hours). None if any cell is neither clearly black nor clearly white or the CRC
    fails: a damaged stamp is discarded, not misread."""
    luma = image if image.ndim == 2 else image.mean(axis=2)
    cell, columns = stamp_layout(luma.shape[1])
    margin = cell // 4  # the codec's deblocking filter blurs cell edges; read only the centre
    payload = 0
    for index in range(STAMP_BITS):
        top, left = _cell_origin(index, cell, columns)
        level = float(luma[top + margin : top + cell - margin, left + margin : left + cell - margin].mean())
        if 64 <= level <= 191:
            return None
        payload = (payload << 1) | int(level > 127)
    word = payload >> 16
    if crc16(word.to_bytes(3, "big")) != payload & 0xFFFF:
        return None
    near = time.time() * 1000.0 if near_ms is None else near_ms
    return word + round((near - word) / 2**STAMP_VALUE_BITS) * 2**STAMP_VALUE_BITS
