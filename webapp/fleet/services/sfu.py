"""Live video through the Janus SFU: the server provisions one VideoRoom per robot and decides who
may publish and subscribe; Janus checks it.

- When a robot connects, its room is created afresh (an older room and everyone in it go: the
  robot's feeds went with its last connection) with an `allowed` list holding only the robot's own
  room token, and a room secret derived from the server's secret (any server process can manage it).
- A page with the `view` capability asks for a robot's camera (`sfu_view`): it gets a short-lived
  Janus signed token and a room token of its own, added to the room's `allowed` list and removed when
  the page goes. Nothing static reaches the page. The page joins as a participant that publishes
  nothing (Janus checks the room token), then subscribes with that participant's private id (the
  room requires one: `require_pvtid`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time

from django.conf import settings

from foreman_protocol.janus import JanusError, JanusSession, plugin_data, sign_token
from foreman_protocol.messages import SfuGrant

log = logging.getLogger(__name__)

ROOM_PUBLISHERS = 12  # feeds per robot: each watched camera at each width pages ask for


def sfu_enabled() -> bool:
    return bool(settings.FOREMAN_SFU_URL)


def room_of(robot_name: str) -> str:
    return f"robot-{robot_name}"


def _room_secret(room: str) -> str:
    return hmac.new(settings.FOREMAN_SFU_TOKEN_SECRET.encode(), f"room:{room}".encode(), hashlib.sha256).hexdigest()


def _grant(robot_name: str, room_token: str, ttl_s: float) -> SfuGrant:
    return SfuGrant(url=settings.FOREMAN_SFU_URL, token=sign_token(settings.FOREMAN_SFU_TOKEN_SECRET, ttl_s), room=room_of(robot_name),
                    room_token=room_token, expires_at=time.time() + ttl_s)


async def _room_request(body: dict[str, object]) -> dict[str, object]:
    """One VideoRoom request on a session of the server's own (a fresh one: these are rare)."""
    session = await JanusSession(settings.FOREMAN_SFU_URL, sign_token(settings.FOREMAN_SFU_TOKEN_SECRET, 60)).open()
    try:
        handle = await session.attach()
        return plugin_data(await session.message(handle, body))
    finally:
        await session.close()


async def publisher_grant(robot_name: str) -> SfuGrant:
    """A fresh room for a robot that just connected, and its grant to publish there. Raises JanusError."""
    room = room_of(robot_name)
    robot_token = secrets.token_urlsafe(24)
    exists = await _room_request({"request": "exists", "room": room})
    if exists.get("exists"):
        await _room_request({"request": "destroy", "room": room, "secret": _room_secret(room)})
    await _room_request({
        "request": "create", "room": room, "admin_key": settings.FOREMAN_SFU_ADMIN_KEY, "secret": _room_secret(room),
        "description": f"Foreman robot {robot_name}", "publishers": ROOM_PUBLISHERS, "videocodec": "vp8,h264",
        "audiocodec": "opus", "bitrate": 0, "fir_freq": 10, "allowed": [robot_token], "is_private": True,
        # VideoRoom checks `allowed` only when someone joins as a participant; require_pvtid makes a
        # subscription name the private id of such a participant, so subscribers pass the list too.
        "require_pvtid": True,
    })
    return _grant(robot_name, robot_token, settings.FOREMAN_SFU_ROBOT_TOKEN_TTL_S)


async def viewer_grant(robot_name: str, room_token: str | None) -> SfuGrant:
    """A page's grant to subscribe in a robot's room: a new signed token each time; its room token is
    added to the room's `allowed` list the first time (pass it back on renewals). Raises JanusError."""
    if room_token is None:
        room_token = secrets.token_urlsafe(24)
        room = room_of(robot_name)
        await _room_request({"request": "allowed", "room": room, "secret": _room_secret(room), "action": "add", "allowed": [room_token]})
    return _grant(robot_name, room_token, settings.FOREMAN_SFU_TOKEN_TTL_S)


async def revoke_viewer(robot_name: str, room_token: str) -> None:
    """Take a page's room token off the room's `allowed` list (the page went). Best effort: a room
    that is gone took its list with it."""
    room = room_of(robot_name)
    try:
        await _room_request({"request": "allowed", "room": room, "secret": _room_secret(room), "action": "remove", "allowed": [room_token]})
    except JanusError as error:
        log.info("could not revoke a viewer of %s on the video server: %s", robot_name, error)
