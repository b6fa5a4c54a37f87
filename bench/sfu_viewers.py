"""Extra viewers of one SFU feed for bench video, in a process of their own (their decoding is not
the robot's CPU): `python -m bench.sfu_viewers GRANT_JSON FEED COUNT SECONDS` joins COUNT aiortc
subscribers with the grant, as a page does (participant, then subscription with its private id),
counts their frames for SECONDS and prints one JSON line: frames per subscriber and seconds."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from foreman_protocol.janus import JanusError, JanusSession
from robot_agent.aiortc_internals import use_loopback_ice
from robot_agent.webrtc import keep_loopback_candidates


class Viewer:
    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.frames = 0
        self.tasks: list[asyncio.Task[None]] = []
        self.session: JanusSession | None = None

        @self.pc.on("track")
        def on_track(track: Any) -> None:
            self.tasks.append(asyncio.create_task(self._consume(track)))

    async def _consume(self, track: Any) -> None:
        while True:
            await track.recv()
            self.frames += 1

    async def join(self, grant: dict[str, Any], feed: str) -> None:
        self.session = await JanusSession(grant["url"], grant["token"]).open()
        participant = await self.session.attach()
        joined = await self.session.message(participant, {"request": "join", "ptype": "publisher", "room": grant["room"], "token": grant["room_token"]})
        handle = await self.session.attach()
        body = {"request": "join", "ptype": "subscriber", "room": grant["room"], "private_id": joined["plugindata"]["data"]["private_id"],
                "streams": [{"feed": feed}]}
        reply = await self.session.message(handle, body)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=keep_loopback_candidates(reply["jsep"]["sdp"]), type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self.session.message(handle, {"request": "start"}, jsep={"type": "answer", "sdp": self.pc.localDescription.sdp})

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await self.pc.close()
        if self.session is not None:
            await self.session.close()


async def main(grant: dict[str, Any], feed: str, count: int, seconds: float) -> dict[str, Any]:
    use_loopback_ice()
    viewers = [Viewer() for _ in range(count)]
    try:
        for viewer in viewers:
            await viewer.join(grant, feed)
        await asyncio.sleep(3.0)  # connected and decoding
        start = [viewer.frames for viewer in viewers]
        started = time.monotonic()
        print("watching", flush=True)  # the bench measures the robot's CPU from here
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - started
        return {"fps": [round((viewer.frames - before) / elapsed, 1) for viewer, before in zip(viewers, start, strict=True)], "seconds": elapsed}
    finally:
        for viewer in viewers:
            try:
                await asyncio.wait_for(viewer.close(), 5)
            except (JanusError, TimeoutError):
                pass


if __name__ == "__main__":
    result = asyncio.run(main(json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
    print(json.dumps(result), flush=True)
