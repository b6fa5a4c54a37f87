"""Property-based fuzzing (hypothesis) of every message type on every endpoint's parser, and of the
agent's mode machine under arbitrary sequences of commands, leases, teleop and time.

Parsers: whatever arrives, the answer is a parsed message or a ProtocolError with a documented
code — never another exception. 10,000+ cases over the four parsers and raw frames.
Mode machine: e-stop latches until clear_estop; motion commands are applied only from the current
lease's holder in teleop/shared, only newer than the last, clamped; the deadman holds after 200 ms.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foreman_protocol import ProtocolError, parse_browser_message, parse_datachannel_message, parse_robot_message, parse_server_to_robot
from foreman_protocol.messages import (
    BROWSER_MESSAGE_TYPES,
    DATACHANNEL_MESSAGE_TYPES,
    ROBOT_MESSAGE_TYPES,
    SERVER_TO_ROBOT_TYPES,
    LeaseInfo,
    LeaseMode,
    TeleopCommand,
)
from robot_agent.clock import FakeClock
from robot_agent.modes import DEADMAN_S, ModeController
from robot_agent.safety import EstopLatch, VelocityLimits

CODES = {"bad_json", "too_large", "unknown_type", "bad_message"}
FIELDS = sorted({"id", "robot", "robots", "peer", "kind", "sdp", "candidate", "lease_id", "seq", "sent_ms", "arm", "vx", "vy",
                 "vz", "spin", "grip", "mode", "takeover", "intervention", "reason", "protocol", "agent_version", "cameras",
                 "capabilities", "policy_version", "estopped", "t", "phase", "progress", "cycle_index", "confidence",
                 "takt_elapsed_s", "takt_s", "warning", "torque_nm", "arms", "latency", "episode", "outcome", "failure_mode",
                 "duration_s", "intervened", "trigger", "severity", "detail", "code", "command", "ok", "error", "lease",
                 "url", "sha256", "message", "ref", "applied_t", "seed", "started_t", "by"})

json_scalars = st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63) | st.floats(allow_nan=False) | st.text(max_size=40)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                           max_leaves=12)


def messages(types: frozenset[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts whose type is (mostly) real and whose fields are real names with arbitrary values."""
    kind = st.sampled_from(sorted(types)) | st.sampled_from(["", "hello ", "HELLO", "__proto__"]) | st.text(max_size=12)
    fields = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), json_values, max_size=10)
    return st.builds(lambda k, f: {**f, "type": k}, kind, fields)


def check(parse: Any, payload: str | bytes) -> None:
    try:
        parse(payload)
    except ProtocolError as error:
        assert error.code in CODES, error.code


FUZZ = settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(messages(ROBOT_MESSAGE_TYPES))
def test_robot_endpoint_parser(message: dict[str, Any]) -> None:
    check(parse_robot_message, json.dumps(message))


@FUZZ
@given(messages(BROWSER_MESSAGE_TYPES))
def test_dashboard_endpoint_parser(message: dict[str, Any]) -> None:
    check(parse_browser_message, json.dumps(message))


@FUZZ
@given(messages(DATACHANNEL_MESSAGE_TYPES))
def test_data_channel_parser(message: dict[str, Any]) -> None:
    check(parse_datachannel_message, json.dumps(message))


@FUZZ
@given(messages(SERVER_TO_ROBOT_TYPES))
def test_agent_side_parser(message: dict[str, Any]) -> None:
    check(parse_server_to_robot, json.dumps(message))


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200), json_values.map(json.dumps)))
def test_raw_frames_on_every_parser(raw: str | bytes) -> None:
    for parse in (parse_robot_message, parse_browser_message, parse_datachannel_message, parse_server_to_robot):
        check(parse, raw)


# ---------------------------------------------------------------- the agent's mode machine

LEASES = [str(uuid.UUID(int=i)) for i in range(1, 4)]


def lease(lease_id: str, mode: LeaseMode) -> LeaseInfo:
    return LeaseInfo(id=lease_id, holder="operator", mode=mode, expires_at="2099-01-01T00:00:00Z", ttl_s=5.0)


operations = st.lists(st.one_of(
    st.tuples(st.just("command"), st.sampled_from(["estop", "clear_estop", "pause", "resume", "hold", "bogus"])),
    st.tuples(st.just("grant"), st.sampled_from(LEASES), st.sampled_from(["teleop", "shared"])),
    st.tuples(st.just("end"), st.sampled_from([*LEASES, None]), st.sampled_from(["released", "expired", "taken_over", "revoked"])),
    # The schema allows ±10; the agent clamps.
    st.tuples(st.just("teleop"), st.sampled_from(LEASES), st.integers(-5, 50), st.floats(-10, 10), st.floats(-10, 10)),
    st.tuples(st.just("wait"), st.floats(0, 0.5)),
    st.tuples(st.just("protective_hold"),),
), max_size=60)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations)
def test_mode_machine_keeps_its_safety_promises(tmp_path: Path, ops: list[tuple[Any, ...]]) -> None:
    clock = FakeClock()
    limits = VelocityLimits()
    directory = tmp_path / uuid.uuid4().hex
    modes = ModeController(clock, EstopLatch(directory), limits)
    estopped = False
    for op in ops:
        if op[0] == "command":
            was_estopped = modes.mode == "estopped"
            ok, _ = modes.command(op[1])
            if op[1] == "estop":
                estopped = True
            elif op[1] == "clear_estop":
                estopped = False
                if was_estopped:
                    assert modes.mode == "hold"  # never straight back to a person's or the policy's motion
            elif estopped:
                assert not ok  # nothing but clear_estop moves an e-stopped robot on
        elif op[0] == "grant":
            modes.lease_granted(lease(op[1], op[2]))
        elif op[0] == "end":
            modes.lease_ended(op[1], op[2])
        elif op[0] == "teleop":
            before = modes.last_command
            command = TeleopCommand(type="teleop", lease_id=op[1], seq=max(0, op[2]), vx=op[3], vy=op[4])
            refused = modes.teleop(command)
            if refused is None:
                assert modes.lease is not None and command.lease_id == modes.lease.id
                assert modes.mode in ("teleop", "shared") and not estopped
                assert modes.last_command is not None
                assert abs(modes.last_command.vx) <= limits.max_speed and abs(modes.last_command.vy) <= limits.max_speed
            else:
                assert modes.last_command is before  # a refused command changes nothing
        elif op[0] == "wait":
            clock.advance(op[1])
            modes.tick()
        else:
            modes.protective_hold("fuzz")
        # Invariants after every step.
        assert modes.estopped == estopped
        if estopped:
            assert modes.mode == "estopped" and modes.teleop_velocity() is None and not modes.policy_drives
            assert modes.lease is None and modes.last_command is None  # an e-stop ends custody
        velocity = modes.teleop_velocity()
        if velocity is not None:
            assert modes.mode in ("teleop", "shared") and modes.lease is not None and velocity.lease_id == modes.lease.id
            assert clock.now() - velocity.received_at <= DEADMAN_S
    # Restarting the agent keeps the latch.
    assert EstopLatch(directory).estopped == estopped
