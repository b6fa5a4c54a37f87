"""Pydantic models for every message in docs/protocol.md, and strict parsers for each endpoint."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024

Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
Uuid = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")]
ShortText = Annotated[str, Field(max_length=500)]
RequestId = Annotated[str, Field(min_length=1, max_length=64)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Velocity = Annotated[float, Field(allow_inf_nan=False, ge=-10.0, le=10.0)]

RobotMode = Literal["autonomous", "paused", "teleop", "shared", "estopped", "hold"]
Outcome = Literal["success", "failure", "aborted"]
FailureMode = Literal[
    "misaligned_nut",
    "cross_threaded",
    "over_torque",
    "under_torque",
    "dropped_nut",
    "missed_pick",
    "takt_overrun",
    "fault",
    "other",
]
RobotTrigger = Literal["policy_uncertainty", "fault", "takt_overrun"]
Severity = Literal["low", "medium", "high"]
CommandName = Literal["pause", "resume", "hold", "estop", "clear_estop"]
LeaseMode = Literal["teleop", "shared"]
LeaseEndReason = Literal["released", "expired", "operator_disconnected", "taken_over", "revoked", "estop"]


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProtocolError(Exception):
    """A message was refused; `code` is one of the error codes in docs/protocol.md."""

    def __init__(self, code: str, message: str, ref: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref

    def as_message(self) -> dict[str, Any]:
        return {"type": "error", "code": self.code, "message": self.message, "ref": self.ref}


# ---------------------------------------------------------------- robot -> server


class IceCandidate(Message):
    candidate: Annotated[str, Field(max_length=2000)]
    sdpMid: Annotated[str, Field(max_length=64)] | None = None
    sdpMLineIndex: Annotated[int, Field(ge=0, le=64)] | None = None
    usernameFragment: Annotated[str, Field(max_length=256)] | None = None


SdpText = Annotated[str, Field(min_length=1, max_length=60_000)]


class Hello(Message):
    type: Literal["hello"]
    protocol: int
    agent_version: ShortText
    cameras: Annotated[list[Name], Field(max_length=16)]
    capabilities: Annotated[list[Name], Field(max_length=32)] = []
    policy_version: ShortText | None = None
    mode: RobotMode
    estopped: bool
    lease_id: Uuid | None = None
    open_interventions: Annotated[list[Uuid], Field(max_length=100)] | None = None


class Latency(Message):
    inference_ms: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    loop_jitter_ms: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    command_ms: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None


class ArmPose(Message):
    x_mm: FiniteFloat
    y_mm: FiniteFloat
    z_mm: FiniteFloat
    grip: Annotated[float, Field(ge=0.0, le=1.0)]
    nut: bool = False


class Telemetry(Message):
    type: Literal["telemetry"]
    t: FiniteFloat
    mode: RobotMode
    phase: Annotated[str, Field(max_length=64)]
    progress: Annotated[float, Field(ge=0.0, le=1.0)]
    cycle_index: Annotated[int, Field(ge=0)]
    confidence: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    takt_elapsed_s: Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
    takt_s: Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
    warning: ShortText | None = None
    torque_nm: FiniteFloat | None = None
    arms: Annotated[dict[Name, ArmPose], Field(max_length=8)] | None = None
    latency: Latency = Latency()


class CycleStarted(Message):
    type: Literal["cycle_started"]
    episode: Uuid
    cycle_index: Annotated[int, Field(ge=0)]
    policy_version: ShortText | None = None
    seed: int | None = None
    started_t: FiniteFloat


class CycleEnded(Message):
    type: Literal["cycle_ended"]
    episode: Uuid
    outcome: Outcome
    failure_mode: FailureMode | None = None
    duration_s: Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
    intervened: bool = False


class InterventionRaised(Message):
    type: Literal["intervention_raised"]
    intervention: Uuid
    trigger: RobotTrigger
    severity: Severity = "medium"
    detail: ShortText = ""
    episode: Uuid | None = None


class Fault(Message):
    type: Literal["fault"]
    code: Name
    detail: ShortText = ""


class Warning(Message):  # noqa: A001 - the protocol's own name
    type: Literal["warning"]
    kind: Name
    detail: ShortText = ""


class CommandAck(Message):
    type: Literal["command_ack"]
    command: RequestId
    ok: bool
    mode: RobotMode | None = None
    error: ShortText | None = None


class RobotSignal(Message):
    type: Literal["signal"]
    peer: Name
    kind: Literal["answer", "ice", "bye"]
    sdp: SdpText | None = None
    candidate: IceCandidate | None = None


class TeleopState(Message):
    type: Literal["teleop_state"]
    lease_id: Uuid
    seq: Annotated[int, Field(ge=0)]
    applied_t: FiniteFloat


RobotToServer: TypeAlias = Annotated[
    Hello
    | Telemetry
    | CycleStarted
    | CycleEnded
    | InterventionRaised
    | Fault
    | Warning
    | CommandAck
    | RobotSignal
    | TeleopState,
    Field(discriminator="type"),
]

# ---------------------------------------------------------------- server -> robot


class StationInfo(Message):
    name: str
    takt_s: float


class LeaseInfo(Message):
    id: Uuid
    holder: str
    mode: LeaseMode
    expires_at: str
    ttl_s: float


class Welcome(Message):
    type: Literal["welcome"]
    robot: str
    protocol: int
    server_time: str
    ice_servers: list[dict[str, Any]]
    estopped: bool
    lease: LeaseInfo | None
    lease_ttl_s: float
    station: StationInfo | None


class Command(Message):
    type: Literal["command"]
    id: RequestId
    command: CommandName
    by: str
    reason: ShortText | None = None


class LeaseMessage(Message):
    type: Literal["lease"]
    lease: LeaseInfo | None
    ended: Uuid | None = None
    reason: LeaseEndReason | None = None


class TeleopCommand(Message):
    """A teleop command, on the data channel or relayed over the WebSocket."""

    type: Literal["teleop"]
    lease_id: Uuid
    seq: Annotated[int, Field(ge=0, lt=2**53)]
    sent_ms: FiniteFloat | None = None
    arm: Literal["left", "right"] = "left"
    vx: Velocity = 0.0
    vy: Velocity = 0.0
    vz: Velocity = 0.0
    spin: Velocity = 0.0
    grip: Literal["open", "close"] | None = None


class ViewerSignal(Message):
    type: Literal["signal"]
    peer: Name
    kind: Literal["offer", "ice", "bye"]
    sdp: SdpText | None = None
    candidate: IceCandidate | None = None


class PolicyRollout(Message):
    type: Literal["policy_rollout"]
    id: RequestId
    policy_version: ShortText
    url: ShortText
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class ErrorMessage(Message):
    type: Literal["error"]
    code: str
    message: str
    ref: str | None = None


ServerToRobot: TypeAlias = Annotated[
    Welcome | Command | LeaseMessage | TeleopCommand | ViewerSignal | PolicyRollout | ErrorMessage,
    Field(discriminator="type"),
]

# ---------------------------------------------------------------- data channel (browser -> agent)


class Ping(Message):
    type: Literal["ping"]
    id: RequestId | None = None
    sent_ms: FiniteFloat


DataChannelMessage: TypeAlias = Annotated[TeleopCommand | Ping, Field(discriminator="type")]

# ---------------------------------------------------------------- browser -> server


class Request(Message):
    id: RequestId | None = None


class Subscribe(Request):
    type: Literal["subscribe"]
    robots: Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=1000)]


class Ack(Request):
    type: Literal["ack"]
    intervention: Uuid


class Claim(Request):
    type: Literal["claim"]
    robot: Name
    mode: LeaseMode = "teleop"
    takeover: bool = False


class Heartbeat(Request):
    type: Literal["heartbeat"]
    robot: Name
    lease_id: Uuid


class Release(Request):
    type: Literal["release"]
    robot: Name
    lease_id: Uuid


class Pause(Request):
    type: Literal["pause"]
    robot: Name


class Resume(Request):
    type: Literal["resume"]
    robot: Name


class Estop(Request):
    type: Literal["estop"]
    robot: Name
    reason: ShortText | None = None


class ClearEstop(Request):
    type: Literal["clear_estop"]
    robot: Name


class BrowserTeleop(TeleopCommand):
    id: RequestId | None = None
    robot: Name


class BrowserSignal(ViewerSignal):
    id: RequestId | None = None
    robot: Name


BrowserToServer: TypeAlias = Annotated[
    Subscribe
    | Ack
    | Claim
    | Heartbeat
    | Release
    | Pause
    | Resume
    | Estop
    | ClearEstop
    | BrowserTeleop
    | BrowserSignal
    | Ping,
    Field(discriminator="type"),
]

_ROBOT_ADAPTER: TypeAdapter[Any] = TypeAdapter(RobotToServer)
_SERVER_TO_ROBOT_ADAPTER: TypeAdapter[Any] = TypeAdapter(ServerToRobot)
_BROWSER_ADAPTER: TypeAdapter[Any] = TypeAdapter(BrowserToServer)
_DATACHANNEL_ADAPTER: TypeAdapter[Any] = TypeAdapter(DataChannelMessage)


def _union_types(alias: Any) -> frozenset[str]:
    members = alias.__origin__.__args__ if hasattr(alias, "__origin__") else ()
    return frozenset(m.model_fields["type"].annotation.__args__[0] for m in members)


ROBOT_MESSAGE_TYPES = _union_types(RobotToServer)
SERVER_TO_ROBOT_TYPES = _union_types(ServerToRobot)
BROWSER_MESSAGE_TYPES = _union_types(BrowserToServer)
DATACHANNEL_MESSAGE_TYPES = _union_types(DataChannelMessage)


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:3]:
        where = ".".join(str(p) for p in item["loc"][1:]) or "message"
        parts.append(f"field '{where}': {item['msg']}")
    return "; ".join(parts)


def _parse(raw: str | bytes, adapter: TypeAdapter[Any], accepted: frozenset[str]) -> Any:
    if isinstance(raw, bytes):
        if len(raw) > MAX_MESSAGE_BYTES:
            raise ProtocolError("too_large", f"message exceeds {MAX_MESSAGE_BYTES} bytes")
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("bad_json", "message is not UTF-8") from None
    if len(raw) > MAX_MESSAGE_BYTES or len(raw.encode("utf-8", "surrogatepass")) > MAX_MESSAGE_BYTES:
        raise ProtocolError("too_large", f"message exceeds {MAX_MESSAGE_BYTES} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise ProtocolError("bad_json", "message is not valid JSON") from None
    if not isinstance(data, dict):
        raise ProtocolError("bad_json", "message must be a JSON object")
    ref = data.get("id") if isinstance(data.get("id"), str) else None
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in accepted:
        raise ProtocolError("unknown_type", f"unknown message type {kind!r}", ref)
    try:
        return adapter.validate_python(data)
    except ValidationError as error:
        raise ProtocolError("bad_message", f"{kind}: {_describe(error)}", ref) from None


def parse_robot_message(raw: str | bytes) -> Any:
    """Parse a message from an agent on /ws/robot/."""
    return _parse(raw, _ROBOT_ADAPTER, ROBOT_MESSAGE_TYPES)


def parse_server_to_robot(raw: str | bytes) -> Any:
    """Parse a message the server sent to an agent (used by the agent)."""
    return _parse(raw, _SERVER_TO_ROBOT_ADAPTER, SERVER_TO_ROBOT_TYPES)


def parse_browser_message(raw: str | bytes) -> Any:
    """Parse a message from a dashboard on /ws/fleet/."""
    return _parse(raw, _BROWSER_ADAPTER, BROWSER_MESSAGE_TYPES)


def parse_datachannel_message(raw: str | bytes) -> Any:
    """Parse a message a viewer sent on the agent's `teleop` data channel."""
    return _parse(raw, _DATACHANNEL_ADAPTER, DATACHANNEL_MESSAGE_TYPES)


def dump_message(message: Message) -> str:
    return message.model_dump_json(exclude_none=False)
