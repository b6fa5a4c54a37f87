"""Pydantic models for every message in docs/protocol.md, in both directions, and strict parsers.

One section per direction: robot → server, server → robot, browser → server, server → browser,
and the data channels (browser → agent, agent → browser). Senders build their messages from these
models and receivers parse them with the parser of their endpoint, so a message that one side sends
and the other cannot read fails in the sender's tests, not on the factory floor.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeAlias, cast

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

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
# A failure mode is a key: one of the robot's declared `features.failure_modes` (the nut station's
# misaligned_nut, ALOHA's dropped_part, ...) or one that every robot may report.
FAILURE_MODE_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
FailureMode = Annotated[str, Field(pattern=FAILURE_MODE_PATTERN)]
GENERIC_FAILURE_MODES: tuple[str, ...] = ("takt_overrun", "fault", "other")
RobotTrigger = Literal["policy_uncertainty", "fault", "takt_overrun"]
# The server raises these itself: a person taking a robot over unprompted, and an e-stop.
InterventionTrigger = Literal["policy_uncertainty", "fault", "takt_overrun", "supervisor", "estop"]
InterventionState = Literal["raised", "acknowledged", "claimed", "resolved"]
Severity = Literal["low", "medium", "high"]
CommandName = Literal["pause", "resume", "estop", "clear_estop"]
LeaseMode = Literal["teleop", "shared"]
LeaseEndReason = Literal["released", "expired", "operator_disconnected", "taken_over", "revoked", "estop"]


ErrorCode = Literal[
    "bad_json",
    "too_large",
    "unknown_type",
    "bad_message",
    "binary_not_supported",
    "forbidden",
    "not_found",
    "conflict",
    "stale_lease",
    "estopped",
    "unsupported_protocol",
    "robot_offline",
    "sfu_unavailable",
    "rate_limited",
    "internal",
]


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorMessage(Message):
    """`error`, on every endpoint; `holder` names who holds the robot when a claim conflicts."""

    type: Literal["error"] = "error"
    code: ErrorCode
    message: str
    ref: str | None = None
    holder: str | None = None


class ProtocolError(Exception):
    """A message was refused; `code` is one of the error codes in docs/protocol.md."""

    def __init__(self, code: ErrorCode, message: str, ref: str | None = None) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message
        self.ref = ref

    def as_message(self) -> ErrorMessage:
        return ErrorMessage(code=self.code, message=self.message, ref=self.ref)


# ---------------------------------------------------------------- robot -> server


class IceCandidate(Message):
    candidate: Annotated[str, Field(max_length=2000)]
    sdpMid: Annotated[str, Field(max_length=64)] | None = None
    sdpMLineIndex: Annotated[int, Field(ge=0, le=64)] | None = None
    usernameFragment: Annotated[str, Field(max_length=256)] | None = None


SdpText = Annotated[str, Field(min_length=1, max_length=60_000)]


class VideoWants(Message):
    """What a viewer will show: the agent sends each camera at most this wide (its aspect kept) and
    this often, so a 320-px fleet tile does not cost a full-size encode."""

    width: Annotated[int, Field(ge=64, le=3840)]
    fps: Annotated[float, Field(ge=1.0, le=60.0, allow_inf_nan=False)]


class SfuGrant(Message):
    """Access to one robot's room on the Janus SFU: `token` is a Janus signed token (checked by Janus
    on every request, expires at `expires_at`), `room_token` is on the room's `allowed` list."""

    url: ShortText  # Janus's WebSocket API, e.g. ws://127.0.0.1:8188
    token: ShortText
    room: Name
    room_token: Annotated[str, Field(min_length=16, max_length=128)]
    expires_at: FiniteFloat  # Unix seconds


def sfu_feed_id(robot: str, camera: str, width: int, fps: float) -> str:
    """The VideoRoom publisher id of one camera at one width and rate: r1.head.640x30."""
    return f"{robot}.{camera}.{width}x{round(fps)}"


IceTransportPolicy = Literal["all", "relay"]  # relay: TURN-relayed candidates only, on both peers
ByeReason = Literal["full", "bad_offer", "failed", "timeout", "closed"]


class FeatureSpec(Message):
    """One number of a robot's state or action vector (`hello.features`)."""

    name: Name
    unit: Annotated[str, Field(max_length=32)] = ""
    low: FiniteFloat | None = None
    high: FiniteFloat | None = None

    @model_validator(mode="after")
    def _limits_in_order(self) -> FeatureSpec:
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"feature {self.name}: low {self.low} is above high {self.high}")
        return self


class TeleopSpec(Message):
    """How a person drives the robot (`hello.features.teleop`): what the teleop axes move."""

    # end_effector: vx, vy, vz move the arm's gripper in m/s (world frame); joint: they jog joints.
    space: Literal["end_effector", "joint"]
    arms: Annotated[list[Literal["left", "right"]], Field(min_length=1, max_length=2)]
    spin: Annotated[str, Field(max_length=64)] | None = None  # what the spin axis does, for a person ("drive the nut"); None: nothing
    grip: bool = True  # the arm has a gripper that `grip` opens and closes
    axes: Annotated[str, Field(max_length=200)] = ""  # joint space: which action features the axes move, for a person

    @model_validator(mode="after")
    def _arms_unique(self) -> TeleopSpec:
        if len(set(self.arms)) != len(self.arms):
            raise ValueError(f"teleop arms repeat: {self.arms}")
        return self


class FailureModeSpec(Message):
    """One way the robot's task can fail, as the robot reports it and a labeler chooses it."""

    key: FailureMode
    label: Annotated[str, Field(min_length=1, max_length=100)]  # for a person: "Dropped nut"


class RobotFeatures(Message):
    """What a robot declares about itself: its control rate, the numbers of its state and action,
    how a person drives it, the phases of its cycle and the ways its task fails."""

    control_hz: Annotated[float, Field(gt=0, le=1000, allow_inf_nan=False)]
    state: Annotated[list[FeatureSpec], Field(max_length=256)]
    action: Annotated[list[FeatureSpec], Field(min_length=1, max_length=64)]
    teleop: TeleopSpec | None = None  # None: the robot cannot be driven remotely
    phases: Annotated[list[Name], Field(max_length=32)] = []  # a cycle's phases in order ([]: it reports none)
    failure_modes: Annotated[list[FailureModeSpec], Field(max_length=32)] = []  # besides GENERIC_FAILURE_MODES; []: says nothing

    @model_validator(mode="after")
    def _names_unique(self) -> RobotFeatures:
        for vector, features in (("state", self.state), ("action", self.action)):
            names = [feature.name for feature in features]
            if len(set(names)) != len(names):
                raise ValueError(f"{vector} feature names repeat: {sorted({n for n in names if names.count(n) > 1})}")
        for what, keys in (("phases", list(self.phases)), ("failure modes", [mode.key for mode in self.failure_modes])):
            if len(set(keys)) != len(keys):
                raise ValueError(f"{what} repeat: {sorted({k for k in keys if keys.count(k) > 1})}")
        generic = sorted({mode.key for mode in self.failure_modes} & set(GENERIC_FAILURE_MODES))
        if generic:
            raise ValueError(f"failure modes {generic} need no declaration: every robot may report them")
        return self

    def reports(self, failure_mode: str) -> bool:
        """Whether a robot with this declaration may report `failure_mode` (a robot that declares no
        failure modes, as agents did before they could, may report any)."""
        return not self.failure_modes or failure_mode in GENERIC_FAILURE_MODES or any(mode.key == failure_mode for mode in self.failure_modes)


class Hello(Message):
    type: Literal["hello"] = "hello"
    protocol: int
    agent_version: ShortText
    cameras: Annotated[list[Name], Field(max_length=16)]
    capabilities: Annotated[list[Name], Field(max_length=32)] = []
    policy_version: ShortText | None = None
    mode: RobotMode
    estopped: bool
    lease_id: Uuid | None = None
    open_interventions: Annotated[list[Uuid], Field(max_length=100)] | None = None
    features: RobotFeatures | None = None


class Latency(Message):
    inference_ms: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    loop_jitter_ms: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    command_ms: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None


class ArmPose(Message):
    x_mm: FiniteFloat
    y_mm: FiniteFloat
    z_mm: FiniteFloat
    grip: Annotated[float, Field(ge=0.0, le=1.0)]
    holding: bool = False  # the gripper holds its part (a nut, a peg)


class TelemetryFields(Message):
    """What a robot reports at up to 10 Hz; `telemetry` on the robot link, and per robot in `telemetry_batch`."""

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


class Telemetry(TelemetryFields):
    type: Literal["telemetry"] = "telemetry"


class CycleStarted(Message):
    type: Literal["cycle_started"] = "cycle_started"
    episode: Uuid
    cycle_index: Annotated[int, Field(ge=0)]
    policy_version: ShortText | None = None
    seed: int | None = None
    started_t: FiniteFloat


class CycleEnded(Message):
    type: Literal["cycle_ended"] = "cycle_ended"
    episode: Uuid
    outcome: Outcome
    failure_mode: FailureMode | None = None
    duration_s: Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
    intervened: bool = False
    actions_clamped: Annotated[int, Field(ge=0)] = 0  # action numbers outside the declared limits, sent clamped


class InterventionRaised(Message):
    type: Literal["intervention_raised"] = "intervention_raised"
    intervention: Uuid
    trigger: RobotTrigger
    severity: Severity = "medium"
    detail: ShortText = ""
    episode: Uuid | None = None


class Fault(Message):
    type: Literal["fault"] = "fault"
    code: Name
    detail: ShortText = ""


class Warning(Message):  # shadows the builtin on purpose: the protocol's own name
    type: Literal["warning"] = "warning"
    kind: Name
    detail: ShortText = ""


class CommandAck(Message):
    type: Literal["command_ack"] = "command_ack"
    command: RequestId
    ok: bool
    mode: RobotMode | None = None
    error: ShortText | None = None


class RobotSignal(Message):
    type: Literal["signal"] = "signal"
    peer: Name
    kind: Literal["answer", "ice", "bye"]
    sdp: SdpText | None = None
    candidate: IceCandidate | None = None
    reason: ByeReason | None = None  # with `bye`: why the agent ended or refused this viewer
    detail: ShortText = ""


class TeleopState(Message):
    type: Literal["teleop_state"] = "teleop_state"
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
    type: Literal["welcome"] = "welcome"
    robot: str
    protocol: int
    server_time: str
    ice_servers: list[dict[str, Any]]
    ice_transport_policy: IceTransportPolicy = "all"
    sfu: SfuGrant | None = None  # the robot publishes live video through the SFU when asked (sfu_publish)
    estopped: bool
    lease: LeaseInfo | None
    lease_ttl_s: float
    station: StationInfo | None


class StationChanged(Message):
    """The robot's station changed (its takt edited, or the robot moved to another station or to none)."""

    type: Literal["station"] = "station"
    station: StationInfo | None


class Command(Message):
    type: Literal["command"] = "command"
    id: RequestId
    command: CommandName
    by: str
    reason: ShortText | None = None


class LeaseMessage(Message):
    type: Literal["lease"] = "lease"
    lease: LeaseInfo | None
    ended: Uuid | None = None
    reason: LeaseEndReason | None = None


class TeleopCommand(Message):
    """A teleop command, on the data channel or relayed over the WebSocket."""

    type: Literal["teleop"] = "teleop"
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
    type: Literal["signal"] = "signal"
    peer: Name
    kind: Literal["offer", "ice", "bye"]
    sdp: SdpText | None = None
    candidate: IceCandidate | None = None
    video: VideoWants | None = None  # with `offer`; none: full size at the agent's video rate


class PolicyRollout(Message):
    type: Literal["policy_rollout"] = "policy_rollout"
    id: RequestId
    policy_version: ShortText
    url: ShortText
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class SfuPublish(Message):
    """A page watches `camera` through the SFU: publish it as feed `feed` at most `width` wide and `fps`
    a second, for `ttl_s` seconds after the last such message (pages renew while they watch)."""

    type: Literal["sfu_publish"] = "sfu_publish"
    camera: Name
    width: Annotated[int, Field(ge=64, le=3840)]
    fps: Annotated[float, Field(ge=1.0, le=60.0, allow_inf_nan=False)]
    feed: Annotated[str, Field(min_length=1, max_length=128)]
    ttl_s: Annotated[float, Field(gt=0, le=600, allow_inf_nan=False)]


ServerToRobot: TypeAlias = Annotated[
    Welcome | Command | LeaseMessage | TeleopCommand | ViewerSignal | SfuPublish | PolicyRollout | StationChanged | ErrorMessage,
    Field(discriminator="type"),
]

# ---------------------------------------------------------------- data channel (browser -> agent)


class Ping(Message):
    type: Literal["ping"] = "ping"
    id: RequestId | None = None
    sent_ms: FiniteFloat


class VideoLayout(Message):
    """How a page shows its cameras now (one peer connection, one track each): each listed camera is
    sent at most that wide and that often from here on, without renegotiating — the big view at full
    size, thumbnails small."""

    type: Literal["video_layout"] = "video_layout"
    cameras: Annotated[dict[Name, VideoWants], Field(max_length=16)]


DataChannelMessage: TypeAlias = Annotated[TeleopCommand | Ping | VideoLayout, Field(discriminator="type")]

# ---------------------------------------------------------------- browser -> server


class Request(Message):
    id: RequestId | None = None


class Subscribe(Request):
    type: Literal["subscribe"] = "subscribe"
    robots: Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=1000)]


class Ack(Request):
    type: Literal["ack"] = "ack"
    intervention: Uuid


class Claim(Request):
    type: Literal["claim"] = "claim"
    robot: Name
    mode: LeaseMode = "teleop"
    takeover: bool = False


class Heartbeat(Request):
    type: Literal["heartbeat"] = "heartbeat"
    robot: Name
    lease_id: Uuid


class Release(Request):
    type: Literal["release"] = "release"
    robot: Name
    lease_id: Uuid


class Pause(Request):
    type: Literal["pause"] = "pause"
    robot: Name


class Resume(Request):
    type: Literal["resume"] = "resume"
    robot: Name


class Estop(Request):
    type: Literal["estop"] = "estop"
    robot: Name
    reason: ShortText | None = None


class ClearEstop(Request):
    type: Literal["clear_estop"] = "clear_estop"
    robot: Name


class BrowserTeleop(TeleopCommand):
    id: RequestId | None = None
    robot: Name


class SfuView(Request):
    """Watch `camera` of `robot` through the SFU: the answer is an SfuGrant and the feed to subscribe
    to (`result.data`: {grant, feed}); send again before `grant.expires_at` and at least every
    20 s while watching (the robot stops publishing a feed nobody renews)."""

    type: Literal["sfu_view"] = "sfu_view"
    robot: Name
    camera: Name
    video: VideoWants | None = None


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
    | SfuView
    | Ping,
    Field(discriminator="type"),
]

# ---------------------------------------------------------------- server -> browser


class UserInfo(Message):
    username: str
    roles: list[str]
    can: list[str]


class TelemetryReport(TelemetryFields):
    """A robot's latest telemetry as the server relays it: the robot's body and when it arrived."""

    received_at: str


class RobotStatus(Message):
    """The ROBOT object: a robot's status without its telemetry (`robot` messages)."""

    name: Name
    station: str | None
    takt_s: float | None
    cameras: list[Name]
    online: bool
    mode: RobotMode
    estopped: bool
    estopped_by: str | None  # a username, or robot:<name> when the robot's own latch tripped
    policy_version: str | None
    lease: LeaseInfo | None
    last_seen: str | None
    retired: bool = False  # taken out of the fleet by an admin: a `robot` message with it removes the tile


class RobotSnapshot(RobotStatus):
    """The ROBOT object in `snapshot`: with the last telemetry the server has (or null)."""

    telemetry: TelemetryReport | None


class InterventionInfo(Message):
    """The INTERVENTION object."""

    id: Uuid
    robot: Name
    trigger: InterventionTrigger
    severity: Severity
    state: InterventionState
    detail: str
    raised_at: str
    acknowledged_at: str | None
    acknowledged_by: str | None
    claimed_at: str | None
    claimed_by: str | None
    resolved_at: str | None
    resolved_by: str | None
    resolution: str | None
    episode: Uuid | None


class Snapshot(Message):
    type: Literal["snapshot"] = "snapshot"
    server_time: str
    protocol: int
    user: UserInfo
    ice_servers: list[dict[str, Any]]
    ice_transport_policy: IceTransportPolicy = "all"
    sfu: bool = False  # live video may go through the SFU (ask with sfu_view; P2P signaling otherwise)
    lease_ttl_s: float
    robots: list[RobotSnapshot]
    interventions: list[InterventionInfo]


class TelemetryBatch(Message):
    type: Literal["telemetry_batch"] = "telemetry_batch"
    robots: dict[Name, TelemetryReport]


class RobotUpdate(Message):
    type: Literal["robot"] = "robot"
    robot: RobotStatus


class InterventionUpdate(Message):
    type: Literal["intervention"] = "intervention"
    intervention: InterventionInfo


class RobotFault(Message):
    """A robot's `fault`, relayed at once to every dashboard (a supervisor sees faults first)."""

    type: Literal["fault"] = "fault"
    robot: Name
    code: Name
    detail: ShortText = ""
    at: str


class RobotWarning(Message):
    """A robot's `warning`, relayed to every dashboard."""

    type: Literal["warning"] = "warning"
    robot: Name
    kind: Name
    detail: ShortText = ""
    at: str


class SignalToViewer(Message):
    """A robot's `signal`, relayed to the one viewer it is for."""

    type: Literal["signal"] = "signal"
    robot: Name
    peer: Name
    kind: Literal["answer", "ice", "bye"]
    sdp: SdpText | None = None
    candidate: IceCandidate | None = None
    reason: ByeReason | None = None
    detail: ShortText = ""


class Result(Message):
    type: Literal["result"] = "result"
    ref: RequestId
    ok: Literal[True] = True
    data: dict[str, Any]


class TeleopStateRelay(Message):
    """The robot's `teleop_state`, relayed to the lease holder's connection only."""

    type: Literal["teleop_state"] = "teleop_state"
    robot: Name
    lease_id: Uuid
    seq: Annotated[int, Field(ge=0)]
    applied_t: FiniteFloat


class ServerPong(Message):
    type: Literal["pong"] = "pong"
    id: RequestId | None = None
    sent_ms: FiniteFloat
    server_ms: FiniteFloat


ServerToBrowser: TypeAlias = Annotated[
    Snapshot
    | TelemetryBatch
    | RobotUpdate
    | InterventionUpdate
    | RobotFault
    | RobotWarning
    | SignalToViewer
    | Result
    | ErrorMessage
    | TeleopStateRelay
    | ServerPong,
    Field(discriminator="type"),
]

# ---------------------------------------------------------------- data channels (agent -> browser)


class Pong(Message):
    """The agent's answer to a data-channel `ping` (on the `teleop` channel)."""

    type: Literal["pong"] = "pong"
    id: RequestId | None = None
    sent_ms: FiniteFloat
    robot_ms: FiniteFloat


class FrameClock(Message):
    """About once a second per video track, on the agent's `clock` channel: RTP timestamp → capture time."""

    type: Literal["frame_clock"] = "frame_clock"
    camera: Name
    mid: Annotated[str, Field(max_length=64)] | None
    rtp_ts: Annotated[int, Field(ge=0, lt=2**32)]
    capture_ms: FiniteFloat


AgentToViewer: TypeAlias = Annotated[Pong | FrameClock, Field(discriminator="type")]

# ---------------------------------------------------------------- the unions as plain types, and parsers

RobotToServerMessage: TypeAlias = (
    Hello | Telemetry | CycleStarted | CycleEnded | InterventionRaised | Fault | Warning | CommandAck | RobotSignal | TeleopState
)
ServerToRobotMessage: TypeAlias = Welcome | Command | LeaseMessage | TeleopCommand | ViewerSignal | SfuPublish | PolicyRollout | StationChanged | ErrorMessage
BrowserToServerMessage: TypeAlias = (
    Subscribe | Ack | Claim | Heartbeat | Release | Pause | Resume | Estop | ClearEstop | BrowserTeleop | BrowserSignal | Ping
)
ServerToBrowserMessage: TypeAlias = (
    Snapshot | TelemetryBatch | RobotUpdate | InterventionUpdate | RobotFault | RobotWarning | SignalToViewer | Result
    | ErrorMessage | TeleopStateRelay | ServerPong
)
DataChannelMessageType: TypeAlias = TeleopCommand | Ping
AgentToViewerMessage: TypeAlias = Pong | FrameClock

_ROBOT_ADAPTER: TypeAdapter[Any] = TypeAdapter(RobotToServer)
_SERVER_TO_ROBOT_ADAPTER: TypeAdapter[Any] = TypeAdapter(ServerToRobot)
_BROWSER_ADAPTER: TypeAdapter[Any] = TypeAdapter(BrowserToServer)
_SERVER_TO_BROWSER_ADAPTER: TypeAdapter[Any] = TypeAdapter(ServerToBrowser)
_DATACHANNEL_ADAPTER: TypeAdapter[Any] = TypeAdapter(DataChannelMessage)
_AGENT_TO_VIEWER_ADAPTER: TypeAdapter[Any] = TypeAdapter(AgentToViewer)


def _union_types(alias: Any) -> frozenset[str]:
    members = alias.__origin__.__args__ if hasattr(alias, "__origin__") else ()
    return frozenset(m.model_fields["type"].annotation.__args__[0] for m in members)


ROBOT_MESSAGE_TYPES = _union_types(RobotToServer)
SERVER_TO_ROBOT_TYPES = _union_types(ServerToRobot)
BROWSER_MESSAGE_TYPES = _union_types(BrowserToServer)
SERVER_TO_BROWSER_TYPES = _union_types(ServerToBrowser)
DATACHANNEL_MESSAGE_TYPES = _union_types(DataChannelMessage)
AGENT_TO_VIEWER_TYPES = _union_types(AgentToViewer)


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


def parse_robot_message(raw: str | bytes) -> RobotToServerMessage:
    """Parse a message from an agent on /ws/robot/."""
    return cast(RobotToServerMessage, _parse(raw, _ROBOT_ADAPTER, ROBOT_MESSAGE_TYPES))


def parse_server_to_robot(raw: str | bytes) -> ServerToRobotMessage:
    """Parse a message the server sent to an agent (used by the agent)."""
    return cast(ServerToRobotMessage, _parse(raw, _SERVER_TO_ROBOT_ADAPTER, SERVER_TO_ROBOT_TYPES))


def parse_browser_message(raw: str | bytes) -> BrowserToServerMessage:
    """Parse a message from a dashboard on /ws/fleet/."""
    return cast(BrowserToServerMessage, _parse(raw, _BROWSER_ADAPTER, BROWSER_MESSAGE_TYPES))


def parse_server_to_browser(raw: str | bytes) -> ServerToBrowserMessage:
    """Parse a message the server sent to a dashboard (tests and scripted clients use it)."""
    return cast(ServerToBrowserMessage, _parse(raw, _SERVER_TO_BROWSER_ADAPTER, SERVER_TO_BROWSER_TYPES))


def parse_datachannel_message(raw: str | bytes) -> DataChannelMessageType:
    """Parse a message a viewer sent on the agent's `teleop` data channel."""
    return cast(DataChannelMessageType, _parse(raw, _DATACHANNEL_ADAPTER, DATACHANNEL_MESSAGE_TYPES))


def parse_agent_to_viewer(raw: str | bytes) -> AgentToViewerMessage:
    """Parse a message the agent sent a viewer on a data channel (`pong`, `frame_clock`)."""
    return cast(AgentToViewerMessage, _parse(raw, _AGENT_TO_VIEWER_ADAPTER, AGENT_TO_VIEWER_TYPES))


def dump_message(message: Message) -> str:
    """The wire form of a message: compact JSON, every field (null ones too)."""
    return message.model_dump_json()


def as_payload(message: Message) -> dict[str, Any]:
    """A message as a JSON-ready dict, for the channel layer (which carries dicts, not models)."""
    return message.model_dump(mode="json")
