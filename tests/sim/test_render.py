"""The live-video renderer draws the same pixels as the reference renderer, frame after frame, while
the station's static layer changes (nuts installed, a new part)."""

from __future__ import annotations

import numpy as np
import pytest

from foreman_sim.expert import Expert
from foreman_sim.render import VideoRenderer, render, render_scene, scene_of
from foreman_sim.station import NutStation


@pytest.mark.parametrize("noise", [True, False])
def test_video_renderer_matches_the_reference_through_a_cycle(noise: bool) -> None:
    renderer = VideoRenderer()
    station = NutStation(4)
    compared = 0
    installed_seen = set()
    for part in (4, 9):  # a second part: the static layer is rebuilt, not reused
        station.reset(part)
        while not station.outcome.done and station.steps < 2400:
            station.step(Expert.action(station))
            if station.steps % 7:
                continue
            scene = scene_of(station)
            installed_seen.add(len(station.installed_nuts))
            for size in ((640, 480), (320, 240)):
                expected = render_scene(scene, "head", size, noise=noise)
                assert np.array_equal(renderer.render(scene, "head", size, noise=noise), expected), (part, station.steps, size)
                compared += 1
            assert np.array_equal(renderer.render(scene, "wrist_left", (160, 120), noise=noise),
                                  render_scene(scene, "wrist_left", (160, 120), noise=noise))
    assert installed_seen >= {0, 1, 2, 3}, installed_seen  # the layer changed under the renderer
    assert compared > 200


def test_render_of_a_station_is_render_of_its_scene() -> None:
    station = NutStation(2)
    for _ in range(300):
        station.step(Expert.action(station))
    for camera in ("head", "wrist_left", "wrist_right"):
        assert np.array_equal(render(station, camera, (320, 240)), render_scene(scene_of(station), camera, (320, 240)))
    with pytest.raises(ValueError):
        VideoRenderer().render(scene_of(station), "nowhere", (64, 48))
