"""Cameras of the simulated station, drawn with numpy (orthographic, top-down).

- `head`: the whole station: part with its four holes, both feeders, both arms and their nuts.
- `wrist_left` / `wrist_right`: a close-up under each gripper (WRIST_FIELD_M wide), looking through
  the driver's bore: a held nut shows as a ring at the image centre, the hole or feeder nut beneath
  shows where it really is — the offset is what the policy must correct.

Shapes are anti-aliased, so sub-pixel offsets show in small images. Sensor noise and the light level
come from (seed, step), so a seed renders the same frames.
"""

from __future__ import annotations

import copy
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


class Canvas:
    """An image with a world → pixel mapping (orthographic)."""

    def __init__(self, width: int, height: int, x0: float, y0: float, x1: float, y1: float, background: np.ndarray) -> None:
        self.image = np.empty((height, width, 3), dtype=np.float32)
        self.image[:] = background
        self.width, self.height = width, height
        self.x0, self.y1 = x0, y1
        self.scale = (x1 - x0) / width  # metres per pixel (square pixels: y range follows)

    def _window(self, cx: float, cy: float, reach: float) -> tuple[slice, slice, np.ndarray, np.ndarray] | None:
        px, py = (cx - self.x0) / self.scale, (self.y1 - cy) / self.scale
        r = reach / self.scale + 1.5
        c0, c1 = max(0, int(px - r)), min(self.width, int(px + r) + 2)
        r0, r1 = max(0, int(py - r)), min(self.height, int(py + r) + 2)
        if c0 >= c1 or r0 >= r1:
            return None
        xs = self.x0 + (np.arange(c0, c1, dtype=np.float32) + 0.5) * self.scale
        ys = self.y1 - (np.arange(r0, r1, dtype=np.float32) + 0.5) * self.scale
        return slice(r0, r1), slice(c0, c1), xs[None, :] - cx, ys[:, None] - cy

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
        image = self.image
        image *= light
        if noise_index is not None:
            image += _noise(image.shape, noise_index)
        np.clip(image, 0, 255, out=image)
        return image.astype(np.uint8)


_NOISE_BANK: dict[tuple[int, ...], np.ndarray] = {}
NOISE_FRAMES = 16


def _noise(shape: tuple[int, ...], index: int) -> np.ndarray:
    """Sensor noise: one of NOISE_FRAMES fixed noise images (drawing fresh noise costs more than the scene)."""
    bank = _NOISE_BANK.get(shape)
    if bank is None:
        bank = np.random.default_rng(12345).normal(0.0, 4.0, (NOISE_FRAMES, *shape)).astype(np.float32)
        if len(_NOISE_BANK) > 16:
            _NOISE_BANK.clear()
        _NOISE_BANK[shape] = bank
    return bank[index % NOISE_FRAMES]


def _draw_scene(canvas: Canvas, station: NutStation, *, arms: bool) -> None:
    canvas.box(float(station.part_centre[0]), float(station.part_centre[1]), 0.20, 0.09, station.part_yaw, PART)
    for side in ARMS:
        for index, hole in enumerate(station.holes[side]):
            filled = index < station.arms[side].installed
            canvas.disc(hole[0], hole[1], 0.0045, CHAMFER)
            canvas.disc(hole[0], hole[1], 0.0030, DONE if filled else HOLE)
        fx, fy = FEEDERS[side]
        canvas.box(fx, fy, 0.03, 0.03, 0.0, FEEDER)
    for side in ARMS:
        arm = station.arms[side]
        nut = arm.feeder_nut
        if nut is not None and nut.state == "feeder":
            canvas.disc(nut.position[0], nut.position[1], 0.005, BRASS, inner=0.0022)
        if arm.nut is not None and arm.nut.state == "threading":
            canvas.disc(arm.nut.position[0], arm.nut.position[1], 0.005, BRASS, inner=0.0022)
    for nut in station.installed_nuts:
        canvas.disc(nut.position[0], nut.position[1], 0.005, DONE, inner=0.0022)
    if arms:
        for side in ARMS:
            arm = station.arms[side]
            x, y, z = arm.position
            height = max(0.0, z - PART_TOP_Z)
            canvas.disc(x, y, 0.012 + 0.05 * height, ARM_COLOURS[side] * 0.6, inner=0.009)  # gripper, bigger when high
            if arm.nut is not None and arm.nut.state == "held":
                canvas.disc(arm.nut.position[0], arm.nut.position[1], 0.005, BRASS, inner=0.0022)


def render(station: NutStation, camera: str, size: tuple[int, int], *, noise: bool = True,
           wrist_field_m: float = WRIST_FIELD_M) -> np.ndarray:
    """(H, W, 3) uint8 RGB image of `camera` at `size` = (width, height)."""
    width, height = size
    rng = (station.seed * 7 + station.steps) if noise else None
    light = 0.85 + 0.3 * ((station.seed * 7919) % 1000) / 1000.0  # the shift's lighting, per part
    if camera == "head":
        x0, y0, x1, y1 = HEAD_VIEW
        aspect_y1 = y0 + (x1 - x0) * height / width
        canvas = Canvas(width, height, x0, y0, x1, aspect_y1, TABLE)
        _draw_scene(canvas, station, arms=True)
        return canvas.finish(rng, light)
    side = camera.removeprefix("wrist_")
    if side not in station.arms:
        raise ValueError(f"no camera named {camera!r}")
    arm = station.arms[side]
    half_w = wrist_field_m / 2
    half_h = half_w * height / width
    x, y = float(arm.position[0]), float(arm.position[1])
    canvas = Canvas(width, height, x - half_w, y - half_h, x + half_w, y + half_h, TABLE)
    _draw_scene(canvas, station, arms=False)
    if arm.nut is not None and arm.nut.state == "held":
        nut = arm.nut.position  # an off-centre grasp shows as a rim off the image centre
        canvas.disc(float(nut[0]), float(nut[1]), 0.005, BRASS * 0.8, inner=0.0040)  # the held nut's rim around the bore
    else:
        canvas.disc(x, y, 0.0012, ARM_COLOURS[side])  # the driver's tip: a small dot at the centre
    return canvas.finish(rng, light)


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
