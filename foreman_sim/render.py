"""Cameras of the simulated station, drawn with numpy (orthographic, top-down).

- `head`: the whole station: part with its four holes, both feeders, both arms and their nuts.
- `wrist_left` / `wrist_right`: a close-up under each gripper (WRIST_FIELD_M wide), looking through
  the driver's bore: a held nut shows as a ring at the image centre, the hole or feeder nut beneath
  shows where it really is — the offset is what the policy must correct.

Shapes are anti-aliased, so sub-pixel offsets show in small images. Sensor noise and the light level
come from (seed, step), so a seed renders the same frames.

`render(station, …)` draws every shape on every call (the reference, and the policy's 32-px wrist
images). Live video uses a `VideoRenderer`: it draws what a camera sees of a `Scene` (a small copy
of the station, cheap to take under the robot's lock), keeps the head camera's static layer (part,
holes, feeders, installed nuts) with its noise frames, and redraws only the windows around moving
shapes — the same pixels as `render`, for a fraction of the work.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from foreman_sim.station import ARMS, FEEDERS, PART_TOP_Z, NutStation

HEAD_VIEW = (-0.45, 0.05, 0.45, 0.65)  # x0, y0, x1, y1 in metres
WRIST_FIELD_M = 0.064
POLICY_FIELD_M = 0.040  # the policy's crop of the wrist camera: 1.25 mm per pixel at 32 px
POLICY_PIXELS = 32

TABLE = np.array([70, 76, 84], dtype=np.float32)
PART = np.array([150, 156, 162], dtype=np.float32)
HOLE = np.array([22, 24, 28], dtype=np.float32)
CHAMFER = np.array([105, 110, 118], dtype=np.float32)
BRASS = np.array([205, 165, 70], dtype=np.float32)
FEEDER = np.array([55, 95, 140], dtype=np.float32)
ARM_COLOURS = {"left": np.array([80, 170, 240], dtype=np.float32), "right": np.array([240, 120, 80], dtype=np.float32)}
DONE = np.array([60, 200, 120], dtype=np.float32)

Window = tuple[int, int, int, int]  # rows r0:r1, columns c0:c1 of the whole image


class Canvas:
    """An image (or a rectangle of one: `region`) with a world → pixel mapping (orthographic).
    A region computes every pixel exactly as the whole image would (same indices, same arithmetic)."""

    def __init__(self, width: int, height: int, x0: float, y0: float, x1: float, y1: float, background: np.ndarray) -> None:
        self.image = np.empty((height, width, 3), dtype=np.float32)
        self.image[:] = background
        self.width, self.height = width, height  # of the whole image
        self.x0, self.y1 = x0, y1
        self.scale = (x1 - x0) / width  # metres per pixel (square pixels: y range follows)
        self.top, self.left = 0, 0  # where self.image sits in the whole image

    def region(self, window: Window) -> Canvas:
        """A copy of the pixels in `window`, drawn on like the whole image."""
        r0, r1, c0, c1 = window
        part = copy.copy(self)
        part.image = self.image[r0 - self.top : r1 - self.top, c0 - self.left : c1 - self.left].copy()
        part.top, part.left = r0, c0
        return part

    def pixel_window(self, cx: float, cy: float, reach: float) -> Window | None:
        """The pixels of the whole image a shape at (cx, cy) reaching `reach` metres may touch."""
        px, py = (cx - self.x0) / self.scale, (self.y1 - cy) / self.scale
        r = reach / self.scale + 1.5
        c0, c1 = max(0, int(px - r)), min(self.width, int(px + r) + 2)
        r0, r1 = max(0, int(py - r)), min(self.height, int(py + r) + 2)
        if c0 >= c1 or r0 >= r1:
            return None
        return r0, r1, c0, c1

    def _window(self, cx: float, cy: float, reach: float) -> tuple[slice, slice, np.ndarray, np.ndarray] | None:
        window = self.pixel_window(cx, cy, reach)
        if window is None:
            return None
        r0, r1, c0, c1 = window
        height, width = self.image.shape[:2]
        r0, r1 = max(r0, self.top), min(r1, self.top + height)
        c0, c1 = max(c0, self.left), min(c1, self.left + width)
        if c0 >= c1 or r0 >= r1:
            return None
        xs = self.x0 + (np.arange(c0, c1, dtype=np.float32) + 0.5) * self.scale
        ys = self.y1 - (np.arange(r0, r1, dtype=np.float32) + 0.5) * self.scale
        return (slice(r0 - self.top, r1 - self.top), slice(c0 - self.left, c1 - self.left), xs[None, :] - cx, ys[:, None] - cy)

    def _blend(self, rows: slice, cols: slice, coverage: np.ndarray, colour: np.ndarray) -> None:
        patch = self.image[rows, cols]
        patch += coverage[..., None] * (colour - patch)

    def disc(self, cx: float, cy: float, radius: float, colour: np.ndarray, inner: float = 0.0) -> None:
        window = self._window(cx, cy, radius)
        if window is None:
            return
        rows, cols, dx, dy = window
        distance = np.sqrt(dx * dx + dy * dy)
        coverage = np.clip(0.5 + (radius - distance) / self.scale, 0.0, 1.0)
        if inner > 0:
            coverage *= np.clip(0.5 + (distance - inner) / self.scale, 0.0, 1.0)
        self._blend(rows, cols, coverage, colour)

    def box(self, cx: float, cy: float, half_w: float, half_h: float, yaw: float, colour: np.ndarray) -> None:
        window = self._window(cx, cy, float(np.hypot(half_w, half_h)))
        if window is None:
            return
        rows, cols, dx, dy = window
        c, s = np.cos(yaw), np.sin(yaw)
        u, v = c * dx + s * dy, -s * dx + c * dy
        coverage = np.clip(0.5 + (half_w - np.abs(u)) / self.scale, 0.0, 1.0) * np.clip(0.5 + (half_h - np.abs(v)) / self.scale, 0.0, 1.0)
        self._blend(rows, cols, coverage, colour)

    def finish(self, noise_index: int | None, light: float) -> np.ndarray:
        """The finished uint8 image (this canvas's own pixels are used up)."""
        image = self.image
        image *= light
        if noise_index is not None:
            height, width = image.shape[:2]
            image += _noise((self.height, self.width, 3), noise_index)[self.top : self.top + height, self.left : self.left + width]
        np.clip(image, 0, 255, out=image)
        return image.astype(np.uint8)


_NOISE_BANK: dict[tuple[int, ...], np.ndarray] = {}
_NOISE_LOCK = threading.Lock()
NOISE_FRAMES = 16


def _noise(shape: tuple[int, ...], index: int) -> np.ndarray:
    """Sensor noise: one of NOISE_FRAMES fixed noise images (drawing fresh noise costs more than the scene)."""
    bank = _NOISE_BANK.get(shape)
    if bank is None:
        with _NOISE_LOCK:  # video cameras render in several threads
            bank = _NOISE_BANK.get(shape)
            if bank is None:
                bank = np.random.default_rng(12345).normal(0.0, 4.0, (NOISE_FRAMES, *shape)).astype(np.float32)
                if len(_NOISE_BANK) > 16:
                    _NOISE_BANK.clear()
                _NOISE_BANK[shape] = bank
    return bank[index % NOISE_FRAMES]


@dataclass(frozen=True)
class Shape:
    kind: str  # "disc" | "box"
    cx: float
    cy: float
    colour: np.ndarray = field(compare=False)
    radius: float = 0.0
    inner: float = 0.0
    half_w: float = 0.0
    half_h: float = 0.0
    yaw: float = 0.0

    @property
    def reach(self) -> float:
        return self.radius if self.kind == "disc" else float(np.hypot(self.half_w, self.half_h))

    def draw(self, canvas: Canvas) -> None:
        if self.kind == "disc":
            canvas.disc(self.cx, self.cy, self.radius, self.colour, inner=self.inner)
        else:
            canvas.box(self.cx, self.cy, self.half_w, self.half_h, self.yaw, self.colour)


def _disc(xy: Any, radius: float, colour: np.ndarray, inner: float = 0.0) -> Shape:
    # Coordinates keep their type (numpy float64 or float): numpy's promotion rules follow it, and
    # the pixels stay exactly those the station's earlier renderer drew (the policy learned on them).
    return Shape("disc", xy[0], xy[1], colour, radius=radius, inner=inner)


def _nut(xy: Any, colour: np.ndarray = BRASS) -> Shape:
    return _disc(xy, 0.005, colour, inner=0.0022)


@dataclass(frozen=True)
class Scene:
    """What the cameras see of a station, in world metres: a copy small enough to take under the
    robot's lock at video rate (a deep copy of the station costs more than drawing it)."""

    seed: int
    steps: int
    static: tuple[Shape, ...]  # the part, holes, feeders and installed nuts: change when a part arrives or a nut goes in
    loose: tuple[Shape, ...]  # nuts on the feeders and nuts being driven
    grippers: tuple[Shape, ...]  # each gripper and the nut it holds (not in its own wrist camera)
    arms: dict[str, tuple[float, float]]  # gripper axis (x, y): the wrist cameras' centres
    held: dict[str, tuple[float, float] | None]  # the held nut's centre, per arm

    @property
    def moving(self) -> tuple[Shape, ...]:
        return self.loose + self.grippers

    @property
    def light(self) -> float:
        return 0.85 + 0.3 * ((self.seed * 7919) % 1000) / 1000.0  # the shift's lighting, per part

    def noise_index(self, noise: bool) -> int | None:
        return (self.seed * 7 + self.steps) if noise else None


def scene_of(station: NutStation) -> Scene:
    static: list[Shape] = [Shape("box", float(station.part_centre[0]), float(station.part_centre[1]), PART,
                                 half_w=0.20, half_h=0.09, yaw=station.part_yaw)]
    for side in ARMS:
        for index, hole in enumerate(station.holes[side]):
            filled = index < station.arms[side].installed
            static.append(_disc(hole, 0.0045, CHAMFER))
            static.append(_disc(hole, 0.0030, DONE if filled else HOLE))
        fx, fy = FEEDERS[side]
        static.append(Shape("box", fx, fy, FEEDER, half_w=0.03, half_h=0.03))
    static.extend(_nut(nut.position, DONE) for nut in station.installed_nuts)
    loose: list[Shape] = []
    for side in ARMS:
        arm = station.arms[side]
        if arm.feeder_nut is not None and arm.feeder_nut.state == "feeder":
            loose.append(_nut(arm.feeder_nut.position))
        if arm.nut is not None and arm.nut.state == "threading":
            loose.append(_nut(arm.nut.position))
    grippers: list[Shape] = []
    arms: dict[str, tuple[float, float]] = {}
    held: dict[str, tuple[float, float] | None] = {}
    for side in ARMS:
        arm = station.arms[side]
        x, y, z = arm.position
        arms[side] = (float(x), float(y))
        height = max(0.0, z - PART_TOP_Z)
        grippers.append(_disc((x, y), 0.012 + 0.05 * height, ARM_COLOURS[side] * 0.6, inner=0.009))  # gripper, bigger when high
        held[side] = None
        if arm.nut is not None and arm.nut.state == "held":
            held[side] = (float(arm.nut.position[0]), float(arm.nut.position[1]))
            grippers.append(_nut(arm.nut.position))
    return Scene(seed=station.seed, steps=station.steps, static=tuple(static), loose=tuple(loose), grippers=tuple(grippers),
                 arms=arms, held=held)


def _head_canvas(size: tuple[int, int]) -> Canvas:
    width, height = size
    x0, y0, x1, _ = HEAD_VIEW
    return Canvas(width, height, x0, y0, x1, y0 + (x1 - x0) * height / width, TABLE)


def render_scene(scene: Scene, camera: str, size: tuple[int, int], *, noise: bool = True,
                 wrist_field_m: float = WRIST_FIELD_M) -> np.ndarray:
    """(H, W, 3) uint8 RGB image of `camera` at `size` = (width, height), every shape drawn."""
    if camera == "head":
        canvas = _head_canvas(size)
        for shape in (*scene.static, *scene.moving):
            shape.draw(canvas)
        return canvas.finish(scene.noise_index(noise), scene.light)
    side = camera.removeprefix("wrist_")
    if side not in scene.arms:
        raise ValueError(f"no camera named {camera!r}")
    width, height = size
    half_w = wrist_field_m / 2
    half_h = half_w * height / width
    x, y = scene.arms[side]
    canvas = Canvas(width, height, x - half_w, y - half_h, x + half_w, y + half_h, TABLE)
    for shape in (*scene.static, *scene.loose):  # looking down through the bore: no grippers
        shape.draw(canvas)
    held = scene.held[side]
    if held is not None:  # an off-centre grasp shows as a rim off the image centre
        canvas.disc(held[0], held[1], 0.005, BRASS * 0.8, inner=0.0040)  # the held nut's rim around the bore
    else:
        canvas.disc(x, y, 0.0012, ARM_COLOURS[side])  # the driver's tip: a small dot at the centre
    return canvas.finish(scene.noise_index(noise), scene.light)


def render(station: NutStation, camera: str, size: tuple[int, int], *, noise: bool = True,
           wrist_field_m: float = WRIST_FIELD_M) -> np.ndarray:
    """(H, W, 3) uint8 RGB image of `camera` at `size` = (width, height)."""
    return render_scene(scene_of(station), camera, size, noise=noise, wrist_field_m=wrist_field_m)


@dataclass
class _StaticLayer:
    """The head camera's static shapes at one size: the clean canvas and its finished noise frames."""

    key: tuple[Any, ...]
    canvas: Canvas
    light: float
    finished: dict[int | None, np.ndarray] = field(default_factory=dict)


class VideoRenderer:
    """Renders a Scene for live video at any size, as `render_scene` would, pixel for pixel.

    Head camera: the static layer is drawn once per (size, static shapes) and finished once per
    noise frame (NOISE_FRAMES of them); a frame is a copy of that with the windows around moving
    shapes redrawn from the clean layer. Wrist cameras follow their arm, so all of their picture
    moves: they are drawn whole. Safe to call from several threads."""

    def __init__(self) -> None:
        self._layers: dict[tuple[int, int], _StaticLayer] = {}
        self._lock = threading.Lock()

    def render(self, scene: Scene, camera: str, size: tuple[int, int], *, noise: bool = True) -> np.ndarray:
        if camera != "head":
            return render_scene(scene, camera, size, noise=noise)
        noise_index = scene.noise_index(noise)
        layer = self._layer(scene, size)
        frame_index = None if noise_index is None else noise_index % NOISE_FRAMES
        base = layer.finished.get(frame_index)
        if base is None:
            base = layer.canvas.region((0, size[1], 0, size[0])).finish(noise_index, layer.light)
            layer.finished[frame_index] = base  # a race only computes the same frame twice
        out = base.copy()
        for window in self._windows(layer.canvas, scene.moving):
            patch = layer.canvas.region(window)
            for shape in scene.moving:  # every moving shape that reaches this window, in drawing order
                shape.draw(patch)
            r0, r1, c0, c1 = window
            out[r0:r1, c0:c1] = patch.finish(noise_index, layer.light)
        return out

    def _layer(self, scene: Scene, size: tuple[int, int]) -> _StaticLayer:
        key = (scene.static, scene.light)
        layer = self._layers.get(size)
        if layer is not None and layer.key == key:
            return layer
        with self._lock:
            layer = self._layers.get(size)
            if layer is None or layer.key != key:
                canvas = _head_canvas(size)
                for shape in scene.static:
                    shape.draw(canvas)
                layer = _StaticLayer(key=key, canvas=canvas, light=scene.light)
                if len(self._layers) >= 4:  # sizes asked for recently; an old one is rebuilt if asked again
                    self._layers.clear()
                self._layers[size] = layer
        return layer

    @staticmethod
    def _windows(canvas: Canvas, shapes: tuple[Shape, ...]) -> list[Window]:
        windows = [canvas.pixel_window(shape.cx, shape.cy, shape.reach) for shape in shapes]
        return [window for window in windows if window is not None]


def policy_image(station: NutStation, side: str, pixels: int = POLICY_PIXELS) -> np.ndarray:
    """The wrist camera as the policy sees it: (pixels, pixels) float32 grey in [0, 1]."""
    image = render(station, f"wrist_{side}", (pixels, pixels), wrist_field_m=POLICY_FIELD_M)
    return (image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)) / 255.0


def observe(station: NutStation, *, ground_truth: bool = False) -> dict[str, Any]:
    """What a policy gets from `station` (a snapshot: later steps do not change it): the state vector
    and both wrist images; with `ground_truth`, also a copy of the station (for the scripted expert)."""
    observation: dict[str, Any] = {
        "state": station.state_vector(),
        "images": {f"wrist_{side}": policy_image(station, side) for side in ARMS},
    }
    if ground_truth:  # a deep copy costs more than the policy's forward pass: only when asked
        observation["station"] = copy.deepcopy(station)
    return observation
