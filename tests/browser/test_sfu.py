"""Live video through a real Janus SFU (Debian's janus, configured by `manage.py janus_config`'s
generator): the demo's server provisions each robot's room, the robot publishes the feed a page
asked for once however many subscribe, and Janus itself — not only the server — refuses whoever
has no grant. Subscribers here are aiortc peers in this process, joining with the grant a logged-in
page got over /ws/fleet/."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from foreman_protocol.janus import JanusError, JanusSession, sign_token
from robot_agent.aiortc_internals import use_loopback_ice
from robot_agent.webrtc import keep_loopback_candidates
from tests.browser.conftest import OPEN_PAGES, Demo, log_in, screenshot, start_demo, stop_demo
from tests.servers import Janus


@pytest.fixture
def sfu_demo(tmp_path: Path) -> Iterator[tuple[Demo, Janus]]:
    janus = Janus(tmp_path / "janus", token_secret=secrets.token_hex(16), admin_key=secrets.token_hex(8)).start()
    demo = start_demo(tmp_path, "--robots", "1", "--exit-after", "300", env={
        "FOREMAN_SFU_URL": janus.url, "FOREMAN_SFU_TOKEN_SECRET": janus.token_secret, "FOREMAN_SFU_ADMIN_KEY": janus.admin_key})
    yield demo, janus
    stop_demo(demo)
    janus.stop()


class Subscriber:
    """A page's part, in Python: join the robot's room with its grant, take Janus's offer, count frames."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.frames = 0
        self.sizes: set[tuple[int, int]] = set()
        self.session: JanusSession | None = None
        self.task: asyncio.Task[None] | None = None

        @self.pc.on("track")
        def on_track(track: Any) -> None:
            self.task = asyncio.create_task(self._consume(track))

    async def _consume(self, track: Any) -> None:
        while True:
            frame = await track.recv()
            self.frames += 1
            self.sizes.add((frame.width, frame.height))

    async def join(self, grant: dict[str, Any], feed: str, room_token: str | None = None) -> None:
        self.session = await JanusSession(grant["url"], grant["token"]).open()
        # A participant that publishes nothing (Janus checks the room token), then a subscription with its private id.
        participant = await self.session.attach()
        joined = await self.session.message(participant, {"request": "join", "ptype": "publisher", "room": grant["room"],
                                                          "token": room_token or grant["room_token"]})
        private_id = joined["plugindata"]["data"]["private_id"]
        handle = await self.session.attach()
        body = {"request": "join", "ptype": "subscriber", "room": grant["room"], "private_id": private_id, "streams": [{"feed": feed}]}
        deadline = time.monotonic() + 15
        while True:  # the robot publishes when asked: its feed may be a moment away
            try:
                reply = await self.session.message(handle, body)
                break
            except JanusError as error:
                if error.code != 428 or time.monotonic() > deadline:  # 428: no such feed (yet)
                    raise
                await asyncio.sleep(0.2)
        offer = reply["jsep"]
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=keep_loopback_candidates(offer["sdp"]), type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self.session.message(handle, {"request": "start"}, jsep={"type": "answer", "sdp": self.pc.localDescription.sdp})

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        await self.pc.close()
        if self.session is not None:
            await self.session.close()


def run_async(coroutine: Any) -> Any:
    """Run asyncio code beside Playwright's sync API (which holds this thread's event loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result(timeout=120)


async def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.1)


def test_one_publication_many_subscribers_and_janus_refuses_the_ungranted(browser: Any, sfu_demo: tuple[Demo, Janus]) -> None:
    demo, janus = sfu_demo
    page = log_in(browser.new_page(), demo.url, "supervisor", "/robots/r1/")
    page.wait_for_function("window.foreman && window.foreman.socket && window.foreman.socket.state === 'open' && "
                           "window.foreman.socket.robots.get('r1')?.online", timeout=30_000)
    assert page.evaluate("window.foreman.socket.sfu") is True
    result = page.evaluate("window.foreman.socket.request({type: 'sfu_view', robot: 'r1', camera: 'head', video: {width: 320, fps: 15}})")
    grant, feed = result["grant"], result["feed"]
    assert feed == "r1.head.320x15" and grant["room"] == "robot-r1" and grant["url"] == janus.url
    run_async(through_janus(janus, grant, feed))
    # The page goes: the server takes its room token off the room's list; its old grant cannot join again.
    page.close()
    run_async(refused_after_the_page_left(grant, feed))


async def through_janus(janus: Janus, grant: dict[str, Any], feed: str) -> None:
    use_loopback_ice()  # aioice leaves 127.0.0.1 out of its host candidates otherwise
    subscribers = [Subscriber() for _ in range(3)]
    try:
        for subscriber in subscribers:
            await subscriber.join(grant, feed)
        await wait_for(lambda: all(s.frames >= 20 for s in subscribers), 30, "frames through Janus on every subscriber")
        assert all(s.sizes == {(320, 240)} for s in subscribers), [s.sizes for s in subscribers]
        # Janus itself refuses a forged token, an expired one, and a room token not on the room's list.
        with pytest.raises(JanusError) as forged:
            await JanusSession(janus.url, "1999999999,janus,janus.plugin.videoroom:forged").open()
        assert forged.value.code == 403
        with pytest.raises(JanusError) as expired:
            await JanusSession(janus.url, sign_token(janus.token_secret, -10)).open()
        assert expired.value.code == 403
        intruder = Subscriber()
        subscribers.append(intruder)
        with pytest.raises(JanusError) as not_allowed:
            await intruder.join(grant, feed, room_token="not-a-granted-room-token")
        assert not_allowed.value.code == 433, not_allowed.value  # VideoRoom: unauthorized (not on the allowed list)
        session = await JanusSession(grant["url"], grant["token"]).open()  # a valid Janus token, but no participant
        try:
            handle = await session.attach()
            with pytest.raises(JanusError) as no_private_id:
                await session.message(handle, {"request": "join", "ptype": "subscriber", "room": grant["room"], "streams": [{"feed": feed}]})
            assert no_private_id.value.code == 433, no_private_id.value  # the room requires a participant's private id
        finally:
            await session.close()
    finally:
        for subscriber in subscribers:
            await subscriber.close()


async def refused_after_the_page_left(grant: dict[str, Any], feed: str) -> None:
    late = Subscriber()
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                await late.join(grant, feed)
            except JanusError as error:
                assert error.code == 433, error
                return
            assert time.monotonic() < deadline, "the departed page's room token still joins"
            await late.close()
            late = Subscriber()
            await asyncio.sleep(0.5)
    finally:
        await late.close()


def test_pages_watch_through_janus_and_fall_back_to_peer_to_peer_when_it_goes(browser: Any, sfu_demo: tuple[Demo, Janus]) -> None:
    """The fleet tile and the robot page (with its teleop data channel, still peer to peer) watch
    through Janus; the robot publishes two feeds (tile-sized and full-sized), once each. Janus stops:
    both pages come back live peer to peer and say why; the robot keeps working."""
    demo, janus = sfu_demo
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    fleet = log_in(context.new_page(), demo.url, "operator")
    tile_live = ("(() => { const t = window.foreman && window.foreman.tiles && window.foreman.tiles.get('r1'); "
                 "return t && t.player && t.player.state === 'live' && "
                 "t.player.via === '{via}' && t.video.getVideoPlaybackQuality().totalVideoFrames > 20; })()")
    fleet.wait_for_function(tile_live.replace("{via}", "sfu"), timeout=45_000)
    robot = context.new_page()
    OPEN_PAGES.append(robot)
    robot.goto(f"{demo.url}/robots/r1/")
    page_live = ("window.foreman && window.foreman.player && window.foreman.player.state === 'live' && window.foreman.player.via === '{via}' && "
                 "document.querySelector('video').getVideoPlaybackQuality().totalVideoFrames > 20")
    robot.wait_for_function(page_live.replace("{via}", "sfu"), timeout=45_000)
    robot.wait_for_function("window.foreman.player.teleop && window.foreman.player.teleop.readyState === 'open'", timeout=20_000)
    assert robot.evaluate("document.querySelector('video').videoWidth") == 640
    assert fleet.evaluate("window.foreman.tiles.get('r1').video.videoWidth") <= 480
    assert "via the video server" in robot.locator("#f-video").inner_text()
    screenshot(robot, "sfu-robot-page")

    janus.stop()
    robot.wait_for_function(page_live.replace("{via}", "p2p"), timeout=45_000)
    fleet.wait_for_function(tile_live.replace("{via}", "p2p"), timeout=45_000)
    assert "video server unreachable" in robot.locator("#f-video").inner_text()
    assert fleet.evaluate("window.foreman.socket.robots.get('r1').online") is True  # the robot carried on
    screenshot(robot, "sfu-down-peer-to-peer")
    context.close()
