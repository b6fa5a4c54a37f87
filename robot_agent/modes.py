"""The robot's mode and custody state machine (docs/agent.md, "Modes").

autonomous — the policy drives.      paused — stopped at a safe point by a supervisor.
hold       — protective stop, waiting for a person (intervention, lease lost, e-stop cleared).
teleop     — a person drives, bound to one lease.   shared — the policy drives, a person nudges.
estopped   — latched (persisted) until clear_estop; then hold. An e-stop ends custody: the lease is
             dropped at once, and after clear_estop motion needs a new lease (or a resume).

Everything here runs on the agent's event-loop thread; the control loop reads it every tick.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from foreman_protocol.messages import LeaseInfo, TeleopCommand
from robot_agent.clock import Clock
from robot_agent.safety import EstopLatch, VelocityLimits

log = logging.getLogger(__name__)

Mode = Literal["autonomous", "paused", "teleop", "shared", "estopped", "hold"]
DEADMAN_S = 0.2


@dataclass
class ActiveLease:
    id: str
    mode: Literal["teleop", "shared"]
    holder: str
    ttl_s: float
    deadline: float  # robot-clock time after which the agent treats the lease as dead


@dataclass(frozen=True)
class TeleopVelocity:
    """One accepted (already clamped) teleop command."""

    lease_id: str
    seq: int
    arm: Literal["left", "right"]
    vx: float
    vy: float
    vz: float
    spin: float
    grip: Literal["open", "close"] | None
    received_at: float
    sent_ms: float | None = None


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class ModeController:
    def __init__(
        self,
        clock: Clock,
        latch: EstopLatch,
        limits: VelocityLimits = VelocityLimits(),
        deadman_s: float = DEADMAN_S,
        wall_time: Callable[[], float] = time.time,
        on_change: Callable[[str, str], None] | None = None,
    ) -> None:
        self.clock = clock
        self.latch = latch
        self.limits = limits
        self.deadman_s = deadman_s
        self.wall_time = wall_time
        self.on_change = on_change
        self._mode: Mode = "estopped" if latch.estopped else "autonomous"
        self.hold_reason: str | None = "e-stop latched at start" if latch.estopped else None
        self.lease: ActiveLease | None = None
        self.last_command: TeleopVelocity | None = None
        self.last_seq = -1
        self.dropped: Counter[str] = Counter()  # teleop commands refused, by reason
        self.deadman_trips = 0
        self._deadman_tripped = False

    # ------------------------------------------------------------------ state

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def estopped(self) -> bool:
        return self.latch.estopped

    def _set_mode(self, mode: Mode, reason: str | None = None) -> None:
        if mode == "hold":
            self.hold_reason = reason
        elif mode != "estopped":
            self.hold_reason = None
        if mode != self._mode:
            log.info("mode %s → %s%s", self._mode, mode, f" ({reason})" if reason else "")
            previous, self._mode = self._mode, mode
            if self.on_change is not None:
                self.on_change(previous, mode)

    @property
    def policy_drives(self) -> bool:
        return self._mode in ("autonomous", "shared")

    # ------------------------------------------------------------------ supervisory commands

    def command(self, name: str, reason: str | None = None) -> tuple[bool, str | None]:
        """Apply a server command; returns (ok, error) for the command_ack."""
        if name == "estop":
            self.latch.set(reason or "e-stop")
            self._drop_lease("estop")
            self._set_mode("estopped")
            return True, None
        if name == "clear_estop":
            if self.latch.estopped:
                self.latch.clear()
            if self._mode == "estopped":
                self._set_mode("hold", "e-stop cleared: waiting for resume or a new lease")
            return True, None
        if self.latch.estopped:
            return False, "robot is e-stopped; only clear_estop moves it on"
        if name == "pause":
            if self.lease is not None:
                return False, "a person holds the robot (lease); release it first"
            self._set_mode("paused")
            return True, None
        if name == "resume":
            if self.lease is not None:
                return False, "a person holds the robot (lease); release it first"
            self._set_mode("autonomous")
            return True, None
        return False, f"unknown command {name!r}"

    def _drop_lease(self, reason: str) -> None:
        if self.lease is not None:
            log.warning("lease %s ended on the robot: %s", self.lease.id, reason)
        self.lease = None
        self.last_command = None

    def protective_hold(self, reason: str) -> None:
        """Stop now and wait for a person (intervention trigger, fault, server lost)."""
        if self.latch.estopped:
            return
        self._set_mode("hold", reason)

    # ------------------------------------------------------------------ custody

    def lease_granted(self, lease: LeaseInfo) -> None:
        """A lease object from `welcome` or `lease` (grant or renewal)."""
        if self.latch.estopped:
            # Custody never survives an e-stop, and none starts under one (the server refuses such
            # claims; a grant racing the e-stop is ignored here, and the server ends it too).
            self.dropped["lease_while_estopped"] += 1
            log.warning("lease %s refused: the robot is e-stopped", lease.id)
            return
        now = self.clock.now()
        remaining = parse_iso(lease.expires_at) - self.wall_time()
        # Guard against clock skew: never trust more than a few TTLs of remaining time.
        remaining = max(0.0, min(remaining, 3 * lease.ttl_s))
        deadline = now + remaining + lease.ttl_s
        if self.lease is not None and self.lease.id == lease.id:
            self.lease.deadline = deadline
            return
        self.lease = ActiveLease(id=lease.id, mode=lease.mode, holder=lease.holder, ttl_s=lease.ttl_s, deadline=deadline)
        self.last_seq = -1
        self.last_command = None
        self._deadman_tripped = False
        self._set_mode(lease.mode)

    def lease_ended(self, lease_id: str | None, reason: str) -> None:
        if self.lease is None or (lease_id is not None and lease_id != self.lease.id):
            return  # not our lease (or already gone)
        self.lease = None
        self.last_command = None
        if self.latch.estopped:
            return
        if reason == "released":
            self._set_mode("autonomous")  # handed back deliberately: the policy resumes
        else:
            self._set_mode("hold", f"lease ended: {reason}")

    def welcome_lease(self, lease: LeaseInfo | None) -> None:
        """The server's view of custody after (re)connect wins over ours."""
        if lease is None:
            if self.lease is not None:
                self.lease_ended(self.lease.id, "revoked")
            return
        if self.lease is not None and self.lease.id != lease.id:
            self.lease_ended(self.lease.id, "taken_over")
        self.lease_granted(lease)

    def tick(self) -> None:
        """Time-based checks: the agent times a lease out by itself if renewals stop."""
        if self.lease is not None and self.clock.now() > self.lease.deadline:
            log.warning("lease %s not renewed in time: holding", self.lease.id)
            self.lease_ended(self.lease.id, "expired")

    # ------------------------------------------------------------------ teleop

    def teleop(self, command: TeleopCommand) -> str | None:
        """Accept a TeleopCommand or say why it was dropped (the reason is counted)."""
        reason = self._refusal(command)
        if reason is not None:
            self.dropped[reason] += 1
            log.debug("teleop seq %s dropped: %s", command.seq, reason)
            return reason
        self.last_seq = command.seq
        limits = self.limits
        self.last_command = TeleopVelocity(
            lease_id=command.lease_id, seq=command.seq, arm=command.arm,
            vx=limits.clamp_speed(command.vx), vy=limits.clamp_speed(command.vy), vz=limits.clamp_speed(command.vz),
            spin=limits.clamp_spin(command.spin), grip=command.grip, received_at=self.clock.now(), sent_ms=command.sent_ms,
        )
        self._deadman_tripped = False
        return None

    def _refusal(self, command: TeleopCommand) -> str | None:
        if self.lease is None or command.lease_id != self.lease.id:
            return "stale_lease"
        if self.latch.estopped or self._mode not in ("teleop", "shared"):
            return "not_in_teleop"
        if command.seq <= self.last_seq:
            return "old_seq"
        return None

    def forget_command(self) -> None:
        """Drop the last teleop command (the lease stays): nothing moves until a newer one arrives."""
        self.last_command = None

    def teleop_velocity(self) -> TeleopVelocity | None:
        """The command to apply now, or None: no command yet, or the deadman (200 ms) has tripped."""
        command = self.last_command
        if command is None or self._mode not in ("teleop", "shared") or self.lease is None:
            return None
        if self.clock.now() - command.received_at > self.deadman_s:
            if not self._deadman_tripped:
                self._deadman_tripped = True
                self.deadman_trips += 1
            return None
        return command

    @property
    def deadman_active(self) -> bool:
        return self._mode in ("teleop", "shared") and self.teleop_velocity() is None
