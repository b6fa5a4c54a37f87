"""Publishing live video to the Janus SFU: each feed a page asked for (`sfu_publish`: one camera at one
width and rate) is published once, in its own peer connection to Janus, whatever the number of
pages subscribed to it; a feed nobody renewed within its ttl is unpublished. The grant (Janus URL,
signed token, room and room token) comes with every `welcome`; a new grant starts over.

Peer-to-peer viewers (WebRtcGateway) and the SFU share the CameraHub and the converted frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from aiortc import RTCPeerConnection, RTCSessionDescription

from foreman_protocol.janus import JanusError, JanusSession
from foreman_protocol.messages import SfuGrant, SfuPublish
from robot_agent.webrtc import CameraTrack, WebRtcGateway, keep_loopback_candidates

log = logging.getLogger(__name__)

REAP_EVERY_S = 5.0


@dataclass
class Feed:
    name: str
    handle: int
    pc: RTCPeerConnection
    track: CameraTrack
    expires_at: float


class SfuPublisher:
    def __init__(self, gateway: WebRtcGateway) -> None:
        self.gateway = gateway
        self.grant: SfuGrant | None = None
        self.session: JanusSession | None = None
        self.feeds: dict[str, Feed] = {}
        self.counters: dict[str, int] = {"published": 0, "unpublished": 0, "failed": 0}
        self._lock = asyncio.Lock()  # one publish or unpublish at a time: Janus handles are per feed
        self._reaper: asyncio.Task[None] | None = None

    async def set_grant(self, grant: SfuGrant | None) -> None:
        """A new connection to the server: its grant (or none) replaces the old one and its feeds."""
        async with self._lock:
            await self._close_all()
            self.grant = grant
        if self._reaper is None:
            self._reaper = asyncio.create_task(self._reap())

    async def publish(self, message: SfuPublish) -> None:
        async with self._lock:
            feed = self.feeds.get(message.feed)
            if feed is not None:
                feed.expires_at = time.monotonic() + message.ttl_s
                return
            if self.grant is None:
                log.info("asked to publish %s, but the server gave no video server grant", message.feed)
                return
            if message.camera not in self.gateway.hub.cameras:
                log.warning("asked to publish unknown camera %r", message.camera)
                return
            try:
                await self._publish(message)
            except (JanusError, OSError, ValueError, KeyError, TypeError) as error:  # Janus refused or answered nonsense
                self.counters["failed"] += 1
                log.warning("could not publish %s to the video server: %s", message.feed, error)

    async def _session(self) -> JanusSession:
        assert self.grant is not None
        if self.session is None or self.session.closed.is_set():
            self.session = await JanusSession(self.grant.url, self.grant.token).open()
        return self.session

    async def _publish(self, message: SfuPublish) -> None:
        assert self.grant is not None
        session = await self._session()
        handle = await session.attach()
        await session.message(handle, {"request": "join", "ptype": "publisher", "room": self.grant.room, "id": message.feed,
                                       "display": message.feed, "token": self.grant.room_token})
        pc = RTCPeerConnection(self.gateway.configuration())
        track, _ = self.gateway.add_camera_track(pc, message.camera, message.width, message.fps)
        feed = Feed(message.feed, handle, pc, track, time.monotonic() + message.ttl_s)
        try:
            await pc.setLocalDescription(await pc.createOffer())  # aiortc gathers every candidate here: no trickle
            reply = await session.message(handle, {"request": "configure", "audio": False, "video": True},
                                          jsep={"type": "offer", "sdp": pc.localDescription.sdp})
            answer = reply.get("jsep")
            if not isinstance(answer, dict) or not isinstance(answer.get("sdp"), str):
                raise JanusError(f"the video server did not answer the offer for {message.feed}")
            sdp = keep_loopback_candidates(answer["sdp"]) if self.gateway.ice_loopback else answer["sdp"]
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        except BaseException:
            await self._unpublish(feed)  # the handle, the peer connection and the camera's demand go too
            raise
        self.feeds[message.feed] = feed
        self.counters["published"] += 1
        log.info("publishing %s to the video server", message.feed)

    async def _unpublish(self, feed: Feed) -> None:
        self.feeds.pop(feed.name, None)
        feed.track.stop()
        if self.session is not None and not self.session.closed.is_set():
            with contextlib.suppress(JanusError):
                await self.session.request({"janus": "detach", "handle_id": feed.handle})
        with contextlib.suppress(Exception):  # closing is best effort
            await asyncio.wait_for(feed.pc.close(), 5)
        self.counters["unpublished"] += 1
        log.info("stopped publishing %s", feed.name)

    async def _close_all(self) -> None:
        for feed in list(self.feeds.values()):
            await self._unpublish(feed)
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(REAP_EVERY_S)
            async with self._lock:
                now = time.monotonic()
                for feed in [f for f in self.feeds.values() if f.expires_at < now or f.pc.connectionState in ("failed", "closed")]:
                    await self._unpublish(feed)
                if self.session is not None and self.session.closed.is_set() and self.feeds:
                    log.warning("lost the video server: its %d feed(s) end; pages ask again", len(self.feeds))
                    for feed in list(self.feeds.values()):
                        await self._unpublish(feed)

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        async with self._lock:
            await self._close_all()
