"""WebSocket consumers: /ws/robot/ (agents) and /ws/fleet/ (dashboards). Thin: services do the work.

Every frame is validated against foreman_protocol; a bad frame gets an `error` back and changes
nothing. Telemetry is coalesced per process and flushed to dashboards every 100 ms (telemetry.py); alerts,
custody changes and e-stops are sent at once, never behind telemetry (shared/channels-capacity.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils import timezone

from foreman_protocol import PROTOCOL_VERSION, ProtocolError, parse_browser_message, parse_robot_message
from foreman_protocol.janus import JanusError
from foreman_protocol.messages import (
    Ack,
    BrowserSignal,
    BrowserTeleop,
    Claim,
    ClearEstop,
    Command,
    CommandAck,
    CycleEnded,
    CycleStarted,
    ErrorCode,
    ErrorMessage,
    Estop,
    Fault,
    Heartbeat,
    Hello,
    InterventionRaised,
    Message,
    Pause,
    Ping,
    Release,
    Result,
    Resume,
    RobotFault,
    RobotSignal,
    RobotWarning,
    ServerPong,
    SfuPublish,
    SfuView,
    SignalToViewer,
    Subscribe,
    Telemetry,
    TeleopCommand,
    TeleopState,
    TeleopStateRelay,
    ViewerSignal,
    Warning,
    dump_message,
    sfu_feed_id,
)
from webapp.fleet import realtime
from webapp.fleet.roles import user_can
from webapp.fleet.selectors import fleet_snapshot, iso, lease_dict, robot_online, robot_online_cameras
from webapp.fleet.services import custody, interventions, robots, sfu
from webapp.fleet.services.audit import robot_audit_record
from webapp.fleet.services.auth import robot_authenticate, user_authenticate
from webapp.fleet.services.errors import NotFound, ServiceError
from webapp.fleet.telemetry import telemetry_batcher
from webapp.fleet.tokens import bearer_from_headers

log = logging.getLogger(__name__)

SFU_FEED_TTL_S = 60.0  # a feed nobody renewed this long is unpublished (pages renew every 20 s)
FULL_SIZE_WIDTH, FULL_SIZE_FPS = 1920, 30.0  # a page that did not say: the camera's own size (the agent caps it)
CLOSE_AUTH_FAILED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_BAD_PROTOCOL = 4400
CLOSE_REPLACED = 4409


def client_source(scope: dict[str, Any]) -> str:
    client = scope.get("client") or ("?", 0)
    return f"ws {client[0]}"


# Hot paths (every telemetry frame in, every batch out) skip AsyncConsumer.dispatch's
# aclose_old_connections() — a thread-pool hop per message, most of their cost
# (shared/channels-capacity.md). Safe because these consumers touch the ORM only through
# database_sync_to_async, which closes stale connections itself around each call.
HOT_MESSAGE_TYPES = frozenset({"websocket.receive", "fleet.telemetry"})


class RateLimit:
    """A token bucket: `rate_per_s` messages a second on average, bursts of `burst`."""

    def __init__(self, rate_per_s: float, burst: float) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.tokens = burst
        self.at = time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate_per_s)
        self.at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class ProtocolConsumer(AsyncWebsocketConsumer):
    """JSON framing, validation and error replies shared by both endpoints."""

    parse: Callable[[str | bytes], Any]
    rate_limit: RateLimit | None = None
    rejected = 0

    async def dispatch(self, message: dict[str, Any]) -> None:
        if message.get("type") in HOT_MESSAGE_TYPES:
            handler = getattr(self, get_handler_name(message), None)
            if handler is not None:
                await handler(message)
                return
        await super().dispatch(message)

    async def send_message(self, message: Message) -> None:
        await self.send(text_data=dump_message(message))

    async def send_payload(self, payload: dict[str, Any]) -> None:
        """A message that crossed the channel layer as a dict (built from its model by realtime.py)."""
        await self.send(text_data=json.dumps(payload, separators=(",", ":")))

    async def send_error(self, code: ErrorCode, message: str, ref: str | None = None, holder: str | None = None) -> None:
        await self.send_message(ErrorMessage(code=code, message=message, ref=ref, holder=holder))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.rate_limit is not None and not self.rate_limit.allow():
            self.rejected += 1
            ref = _request_id(text_data)
            await self.send_error("rate_limited", f"more than {self.rate_limit.rate_per_s:.0f} messages a second: message dropped", ref)
            return
        if text_data is None:
            self.rejected += 1
            await self.send_error("binary_not_supported", "binary frames are not part of the protocol")
            return
        try:
            message = type(self).parse(text_data)
        except ProtocolError as error:
            self.rejected += 1
            await self.send_message(error.as_message())
            return
        ref = getattr(message, "id", None)
        try:
            await self.handle(message)
        except ServiceError as error:
            self.rejected += 1
            holder = error.data.get("holder")
            await self.send_error(error.code, error.message, ref, holder=str(holder) if holder is not None else None)
        except ProtocolError as error:
            self.rejected += 1
            await self.send_error(error.code, error.message, ref)
        except Exception:
            # Never let one message kill the socket; say so and carry on.
            log.exception("error handling %s message", getattr(message, "type", "?"))
            await self.send_error("internal", "the server failed to handle this message", ref)

    async def handle(self, message: Any) -> None:
        raise NotImplementedError


def _request_id(text: str | None) -> str | None:
    """The `id` of a message refused before parsing (rate limit), so its sender's request fails at once."""
    if not text or len(text) > 65_536:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, str) and len(value) <= 64 else None


class RobotConsumer(ProtocolConsumer):
    parse = staticmethod(parse_robot_message)

    robot_name: str = ""
    greeted = False

    async def connect(self) -> None:
        token = bearer_from_headers(self.scope.get("headers", []))
        robot = await database_sync_to_async(robot_authenticate)(token)
        await self.accept()
        if robot is None:
            await self.close(code=CLOSE_AUTH_FAILED)
            return
        self.robot_name = robot.name
        self.peers: dict[str, str] = {}  # peer id -> the viewer's channel
        self.last_mode: str | None = None
        self.lease_id: str | None = None
        self.lease_holder_channel = ""
        self.lease_timer: asyncio.TimerHandle | None = None
        self.last_telemetry_at = 0.0

    async def disconnect(self, code: int) -> None:
        if not self.robot_name:
            return
        if self.lease_timer is not None:
            self.lease_timer.cancel()
        await self.channel_layer.group_discard(realtime.robot_group(self.robot_name), self.channel_name)
        for peer, viewer in self.peers.items():
            bye = SignalToViewer(robot=self.robot_name, peer=peer, kind="bye", reason="closed", detail="the robot disconnected")
            await realtime.send_to_channel(viewer, realtime.fleet_direct_event(bye))
        if self.greeted:
            await database_sync_to_async(robots.robot_disconnected)(robot_name=self.robot_name, channel=self.channel_name)

    async def handle(self, message: Any) -> None:
        if isinstance(message, Hello):
            await self.on_hello(message)
            return
        if not self.greeted:
            raise ProtocolError("bad_message", "the first message must be hello")
        match message:
            case Telemetry():
                await self.on_telemetry(message)
            case CycleStarted():
                await database_sync_to_async(robots.episode_started)(robot_name=self.robot_name, message=message)
            case CycleEnded():
                await database_sync_to_async(robots.episode_ended)(robot_name=self.robot_name, message=message)
            case InterventionRaised():
                await self.on_intervention_raised(message)
            case Fault():
                await self.on_fault(message)
            case Warning():
                await realtime.relay_robot_event(RobotWarning(robot=self.robot_name, kind=message.kind, detail=message.detail,
                                                              at=iso(timezone.now()) or ""))
            case CommandAck():
                await self.on_command_ack(message)
            case RobotSignal():
                await self.on_signal(message)
            case TeleopState():
                await self.on_teleop_state(message)

    async def on_hello(self, hello: Hello) -> None:
        if hello.protocol != PROTOCOL_VERSION:
            await self.send_error("unsupported_protocol", f"server speaks protocol {PROTOCOL_VERSION}, agent {hello.protocol}")
            await self.close(code=CLOSE_BAD_PROTOCOL)
            return
        grant = None
        if sfu.sfu_enabled():  # the room first: pages ask for it as soon as the robot shows online
            try:
                grant = await sfu.publisher_grant(self.robot_name)
            except JanusError as error:  # the robot works without it: its video goes peer to peer
                log.warning("robot %s: no room on the video server (%s); its video goes peer to peer", self.robot_name, error)
        welcome, previous = await database_sync_to_async(robots.robot_connected)(
            robot_name=self.robot_name,
            hello=hello,
            channel=self.channel_name,
            source=client_source(self.scope),
        )
        if grant is not None:
            welcome = welcome.model_copy(update={"sfu": grant})
        if previous:
            await realtime.send_to_channel(previous, realtime.robot_replaced_event())
        await self.channel_layer.group_add(realtime.robot_group(self.robot_name), self.channel_name)
        self.greeted = True
        self.last_mode = hello.mode
        await self.send_message(welcome)
        self.track_lease(welcome.lease.id if welcome.lease else None, welcome.lease.expires_at if welcome.lease else None)
        if welcome.estopped:
            await self.send_message(Command(id="estop-latched", command="estop", by="server", reason="e-stop is latched"))

    async def on_telemetry(self, message: Telemetry) -> None:
        body = message.model_dump(exclude={"type"})
        body["received_at"] = iso(timezone.now())
        telemetry_batcher().put(self.robot_name, body)
        if message.mode != self.last_mode:
            self.last_mode = message.mode
            await database_sync_to_async(robots.robot_set_mode)(robot_name=self.robot_name, mode=message.mode)
            if message.mode == "estopped":
                await database_sync_to_async(custody.robot_estop)(
                    robot_name=self.robot_name, actor=None, reason="reported by robot", source=client_source(self.scope)
                )

    async def on_intervention_raised(self, message: InterventionRaised) -> None:
        await database_sync_to_async(interventions.intervention_raise)(
            robot_name=self.robot_name,
            intervention_id=message.intervention,
            trigger=message.trigger,
            severity=message.severity,
            detail=message.detail,
            episode_id=message.episode,
        )

    async def on_fault(self, message: Fault) -> None:
        # A fault is what a supervisor needs to see first: to every dashboard now, then the audit.
        await realtime.relay_robot_event(RobotFault(robot=self.robot_name, code=message.code, detail=message.detail,
                                                    at=iso(timezone.now()) or ""))
        await database_sync_to_async(self.audit)("fault", code=message.code, detail=message.detail)

    async def on_command_ack(self, message: CommandAck) -> None:
        from webapp.learning.services.rollouts import rollout_command_acked

        target = await database_sync_to_async(rollout_command_acked)(
            robot_name=self.robot_name, command_id=message.command, ok=message.ok, error=message.error)
        if target is None and not message.ok:
            await database_sync_to_async(self.audit)("command_refused", command=message.command, error=message.error)

    async def on_signal(self, message: RobotSignal) -> None:
        viewer = self.peers.get(message.peer)
        if viewer is None:
            raise ProtocolError("bad_message", f"no viewer with peer id {message.peer!r}")
        relayed = SignalToViewer(robot=self.robot_name, peer=message.peer, kind=message.kind, sdp=message.sdp, candidate=message.candidate,
                                 reason=message.reason, detail=message.detail)
        await realtime.send_to_channel(viewer, realtime.fleet_direct_event(relayed))
        if message.kind == "bye":
            self.peers.pop(message.peer, None)

    async def on_teleop_state(self, message: TeleopState) -> None:
        if self.lease_holder_channel and message.lease_id == self.lease_id:
            relayed = TeleopStateRelay(robot=self.robot_name, lease_id=message.lease_id, seq=message.seq, applied_t=message.applied_t)
            await realtime.send_to_channel(self.lease_holder_channel, realtime.fleet_direct_event(relayed))

    def audit(self, action: str, **detail: Any) -> None:
        robot_audit_record(robot_name=self.robot_name, action=action, source=client_source(self.scope), **detail)

    # -- lease timer: the robot's socket notices expiry at once, without polling the database

    def track_lease(self, lease_id: str | None, expires_at: str | None) -> None:
        if self.lease_timer is not None:
            self.lease_timer.cancel()
            self.lease_timer = None
        self.lease_id = lease_id
        if lease_id is None or expires_at is None:
            return
        expires = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
        delay = max(0.0, (expires - timezone.now()).total_seconds()) + 0.05
        self.lease_timer = asyncio.get_running_loop().call_later(delay, lambda: asyncio.ensure_future(self.expire_lease(lease_id)))

    async def expire_lease(self, lease_id: str) -> None:
        try:
            await database_sync_to_async(custody.lease_expire_if_stale)(lease_id)
        except Exception:
            log.exception("lease expiry check failed for %s", lease_id)

    # -- channel-layer events (realtime.py's TypedDicts)

    async def robot_send(self, event: realtime.RobotSendEvent) -> None:
        await self.send_payload(event["payload"])

    async def robot_lease(self, event: realtime.RobotLeaseEvent) -> None:
        payload = event["payload"]
        lease = payload["lease"]
        self.track_lease(lease["id"] if lease else None, lease["expires_at"] if lease else None)
        self.lease_holder_channel = event["holder_channel"] if lease else ""
        await self.send_payload(payload)

    async def robot_signal(self, event: realtime.RobotSignalEvent) -> None:
        payload, viewer = event["payload"], event["viewer"]
        owner = self.peers.get(payload["peer"])
        if owner is not None and owner != viewer:
            return  # another viewer's peer id: never let one viewer talk over another's connection
        if payload["kind"] == "bye":
            self.peers.pop(payload["peer"], None)
        else:
            self.peers[payload["peer"]] = viewer
        await self.send_payload(payload)

    async def robot_replaced(self, event: realtime.RobotReplacedEvent) -> None:
        self.greeted = False  # the new connection owns the robot's status now
        await self.close(code=CLOSE_REPLACED)

    async def robot_revoked(self, event: realtime.RobotRevokedEvent) -> None:
        await self.close(code=CLOSE_AUTH_FAILED)  # as if it had connected with the revoked token


def _origin_allowed(scope: dict[str, Any]) -> bool:
    origin = ""
    for name, value in scope.get("headers", []):
        if name == b"origin":
            origin = value.decode("latin-1")
    if not origin:
        return False
    host = origin.split("://", 1)[-1].split("/", 1)[0]
    domain, _port = split_domain_port(host)
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)


# A dashboard sends teleop (20 Hz while driving), heartbeats, pings and bursts of ICE candidates:
# far below this. A page stuck in a loop is refused before it costs the server.
FLEET_RATE_PER_S = 50.0
FLEET_BURST = 100.0


class FleetConsumer(ProtocolConsumer):
    parse = staticmethod(parse_browser_message)

    user: Any = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            user = await database_sync_to_async(user_authenticate)(bearer_from_headers(self.scope.get("headers", [])))
        await self.accept()
        if user is None:
            await self.close(code=CLOSE_AUTH_FAILED)
            return
        if not _origin_allowed(self.scope) or not await database_sync_to_async(user_can)(user, "view"):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.user = user
        self.rate_limit = RateLimit(FLEET_RATE_PER_S, FLEET_BURST)
        self.subscribed: set[str] | None = None  # None = every robot
        self.viewer_peers: dict[str, str] = {}  # peer id -> robot, to say bye when this page goes
        self.leases: dict[str, str] = {}  # robot -> lease id this connection holds
        self.sfu_room_tokens: dict[str, str] = {}  # robot -> this page's token on its SFU room's allowed list
        await self.channel_layer.group_add(realtime.FLEET_GROUP, self.channel_name)
        await self.send_message(await database_sync_to_async(fleet_snapshot)(user))

    async def disconnect(self, code: int) -> None:
        if self.user is None:
            return
        await self.channel_layer.group_discard(realtime.FLEET_GROUP, self.channel_name)
        for peer, robot in self.viewer_peers.items():
            bye = ViewerSignal(peer=peer, kind="bye")
            await realtime.send_to_group(realtime.robot_group(robot), realtime.robot_signal_event(bye, self.channel_name))
        # The operator is gone: leases held through this socket end and their robots hold.
        await database_sync_to_async(custody.leases_end_for_channel)(self.channel_name, client_source(self.scope))
        # After the leases (safety first), and together: a fleet page watched every robot, and an
        # unreachable video server costs each revocation its timeout.
        results = await asyncio.gather(*(sfu.revoke_viewer(robot, token) for robot, token in self.sfu_room_tokens.items()), return_exceptions=True)
        for error in (result for result in results if isinstance(result, BaseException)):
            log.warning("revoking a page's video-server grant failed: %s", error)

    async def handle(self, message: Any) -> None:
        data: dict[str, Any] | None
        match message:
            case Subscribe():
                data = await self.on_subscribe(message)
            case Ping():
                await self.send_message(ServerPong(id=message.id, sent_ms=message.sent_ms, server_ms=time.time() * 1000))
                return
            case Ack():
                data = await self.on_ack(message)
            case Claim():
                data = await self.on_claim(message)
            case Heartbeat():
                data = await self.on_heartbeat(message)
            case Release():
                data = await self.on_release(message)
            case Pause() | Resume():
                command = await self.service(custody.robot_command)(robot_name=message.robot, user=self.user, command=message.type, source=self.source)
                data = {"command": command}
            case Estop():
                await self.service(custody.robot_estop)(robot_name=message.robot, actor=self.user, reason=message.reason or "", source=self.source)
                data = {"estopped": True}
            case ClearEstop():
                await self.service(custody.robot_clear_estop)(robot_name=message.robot, user=self.user, source=self.source)
                data = {"estopped": False}
            case BrowserTeleop():
                await self.on_teleop(message)
                return  # fire and forget: 20 Hz of answers would be noise
            case BrowserSignal():
                await self.on_signal(message)
                return
            case SfuView():
                data = await self.on_sfu_view(message)
                if data is None:
                    return
            case _:
                raise ProtocolError("unknown_type", f"unknown message type {message.type!r}")
        if message.id is not None:
            await self.send_message(Result(ref=message.id, data=data or {}))

    def service(self, function: Callable[..., Any]) -> Callable[..., Any]:
        return database_sync_to_async(function)

    @property
    def source(self) -> str:
        return client_source(self.scope)

    async def on_subscribe(self, message: Subscribe) -> dict[str, Any]:
        self.subscribed = None if "*" in message.robots else set(message.robots)
        return {"robots": sorted(self.subscribed) if self.subscribed is not None else ["*"]}

    async def on_ack(self, message: Ack) -> dict[str, Any]:
        item = await self.service(interventions.intervention_acknowledge)(intervention_id=message.intervention, user=self.user, source=self.source)
        return {"intervention": str(item.id), "state": item.state}

    async def on_claim(self, message: Claim) -> dict[str, Any]:
        lease = await self.service(custody.robot_claim_control)(
            robot_name=message.robot, user=self.user, mode=message.mode, takeover=message.takeover,
            holder_channel=self.channel_name, source=self.source,
        )
        self.leases[message.robot] = str(lease.id)
        return {"lease": await self.service(lease_dict)(lease)}

    async def on_heartbeat(self, message: Heartbeat) -> dict[str, Any]:
        lease = await self.service(custody.lease_heartbeat)(robot_name=message.robot, lease_id=message.lease_id, user=self.user, source=self.source)
        return {"lease": await self.service(lease_dict)(lease)}

    async def on_release(self, message: Release) -> dict[str, Any]:
        await self.service(custody.lease_release)(robot_name=message.robot, lease_id=message.lease_id, user=self.user, source=self.source)
        self.leases.pop(message.robot, None)
        return {"released": message.lease_id}

    async def on_teleop(self, message: BrowserTeleop) -> None:
        # Fast path: this socket must hold the lease it names; the agent checks the lease again.
        if self.leases.get(message.robot) != message.lease_id:
            await self.service(custody.lease_holder_check)(robot_name=message.robot, lease_id=message.lease_id, user=self.user)
        command = TeleopCommand.model_validate(message.model_dump(exclude={"id", "robot"}))
        await realtime.send_to_group(realtime.robot_group(message.robot), realtime.robot_send_event(command))

    async def on_sfu_view(self, message: SfuView) -> dict[str, Any] | None:
        if not sfu.sfu_enabled():
            await self.send_error("sfu_unavailable", "no video server (SFU) is configured: use peer-to-peer signaling", message.id)
            return None
        robot = await self.service(robot_online_cameras)(message.robot)
        if robot is None:
            raise NotFound(f"no robot named {message.robot!r}")
        online, cameras = robot
        if not online:
            await self.send_error("robot_offline", f"{message.robot} is offline", message.id)
            return None
        if message.camera not in cameras:
            raise NotFound(f"{message.robot} has no camera {message.camera!r} (it has {', '.join(cameras) or 'none'})")
        try:
            grant = await sfu.viewer_grant(message.robot, self.sfu_room_tokens.get(message.robot))
        except JanusError as error:
            await self.send_error("sfu_unavailable", f"video server unreachable: {error}", message.id)
            return None
        self.sfu_room_tokens[message.robot] = grant.room_token
        width, fps = (message.video.width, message.video.fps) if message.video else (FULL_SIZE_WIDTH, FULL_SIZE_FPS)
        feed = sfu_feed_id(message.robot, message.camera, width, fps)
        publish = SfuPublish(camera=message.camera, width=width, fps=fps, feed=feed, ttl_s=SFU_FEED_TTL_S)
        await realtime.send_to_group(realtime.robot_group(message.robot), realtime.robot_send_event(publish))
        return {"grant": grant.model_dump(mode="json"), "feed": feed}

    async def on_signal(self, message: BrowserSignal) -> None:
        if message.kind == "offer":
            online = await self.service(robot_online)(message.robot)
            if online is None:
                raise NotFound(f"no robot named {message.robot!r}")
            if not online:
                await self.send_error("robot_offline", f"{message.robot} is offline", message.id)
                return
            self.viewer_peers[message.peer] = message.robot
        signal = ViewerSignal(peer=message.peer, kind=message.kind, sdp=message.sdp, candidate=message.candidate, video=message.video)
        await realtime.send_to_group(realtime.robot_group(message.robot), realtime.robot_signal_event(signal, self.channel_name))
        if message.kind == "bye":
            self.viewer_peers.pop(message.peer, None)

    # -- channel-layer events (realtime.py's TypedDicts)

    async def fleet_send(self, event: realtime.FleetSendEvent) -> None:
        payload = event["payload"]
        if payload.get("type") == "robot":
            status = payload["robot"]
            lease = status.get("lease")
            if self.leases.get(status["name"]) and (lease is None or lease["id"] != self.leases[status["name"]]):
                self.leases.pop(status["name"], None)  # our lease ended elsewhere (expiry, takeover, e-stop)
        await self.send_payload(payload)

    async def fleet_telemetry(self, event: realtime.FleetTelemetryEvent) -> None:
        robots_batch = event["robots"]
        if self.subscribed is not None:
            robots_batch = {name: body for name, body in robots_batch.items() if name in self.subscribed}
        if robots_batch:
            await self.send_payload({"type": "telemetry_batch", "robots": robots_batch})

    async def fleet_direct(self, event: realtime.FleetDirectEvent) -> None:
        await self.send_payload(event["payload"])
