"""Modes, custody and teleop safety: deadman, lease enforcement, seq ordering, clamping, e-stop latch."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

from foreman_protocol.messages import LeaseInfo, TeleopCommand
from robot_agent.clock import FakeClock
from robot_agent.modes import ModeController
from robot_agent.safety import EstopLatch, VelocityLimits


def lease(ttl: float = 5.0, lease_id: str | None = None, mode: str = "teleop") -> LeaseInfo:
    expires = datetime.now(UTC) + timedelta(seconds=ttl)
    return LeaseInfo(id=lease_id or str(uuid.uuid4()), holder="operator", mode=mode, expires_at=expires.isoformat(), ttl_s=ttl)


def command(lease_id: str, seq: int, **velocities: float) -> TeleopCommand:
    return TeleopCommand(type="teleop", lease_id=lease_id, seq=seq, **velocities)


def controller(tmp_path, clock: FakeClock | None = None) -> ModeController:
    return ModeController(clock or FakeClock(), EstopLatch(tmp_path), VelocityLimits(max_speed=0.25, max_spin=5.0))


def test_deadman_holds_motion_after_200_ms_without_commands(tmp_path):
    clock = FakeClock()
    modes = controller(tmp_path, clock)
    grant = lease()
    modes.lease_granted(grant)
    assert modes.mode == "teleop"
    assert modes.teleop_velocity() is None  # no command yet: nothing moves
    assert modes.teleop(command(grant.id, 1, vy=0.05)) is None
    clock.advance(0.19)
    assert modes.teleop_velocity() is not None and modes.teleop_velocity().vy == 0.05
    clock.advance(0.02)  # 210 ms since the last command
    assert modes.teleop_velocity() is None
    assert modes.deadman_active and modes.deadman_trips == 1
    assert modes.mode == "teleop"  # still the operator's robot, just not moving
    assert modes.teleop(command(grant.id, 2, vy=0.01)) is None
    assert modes.teleop_velocity().vy == 0.01


def test_commands_under_a_wrong_or_old_lease_are_dropped_and_counted(tmp_path):
    modes = controller(tmp_path)
    old, current = lease(), lease()
    modes.lease_granted(old)
    modes.lease_ended(old.id, "released")
    assert modes.mode == "autonomous"
    modes.lease_granted(current)
    assert modes.teleop(command(old.id, 100, vx=0.1)) == "stale_lease"
    assert modes.teleop(command(str(uuid.uuid4()), 101, vx=0.1)) == "stale_lease"
    assert modes.dropped["stale_lease"] == 2
    assert modes.teleop_velocity() is None
    assert modes.teleop(command(current.id, 1, vx=0.1)) is None


def test_newest_seq_wins_older_dropped(tmp_path):
    modes = controller(tmp_path)
    grant = lease()
    modes.lease_granted(grant)
    assert modes.teleop(command(grant.id, 5, vx=0.05)) is None
    assert modes.teleop(command(grant.id, 3, vx=-0.2)) == "old_seq"
    assert modes.teleop(command(grant.id, 5, vx=-0.2)) == "old_seq"
    assert modes.teleop_velocity().vx == 0.05
    assert modes.teleop(command(grant.id, 6, vx=0.02)) is None
    assert modes.teleop_velocity().seq == 6 and modes.dropped["old_seq"] == 2


def test_velocities_are_clamped_to_limits(tmp_path):
    modes = controller(tmp_path)
    grant = lease()
    modes.lease_granted(grant)
    modes.teleop(command(grant.id, 1, vx=9.0, vy=-9.0, vz=0.1, spin=-10.0))
    applied = modes.teleop_velocity()
    assert (applied.vx, applied.vy, applied.vz, applied.spin) == (0.25, -0.25, 0.1, -5.0)


def test_lease_end_reasons_release_resumes_others_hold(tmp_path):
    modes = controller(tmp_path)
    for reason, expected in [("released", "autonomous"), ("expired", "hold"), ("operator_disconnected", "hold"),
                             ("taken_over", "hold"), ("revoked", "hold")]:
        modes.command("resume")
        grant = lease()
        modes.lease_granted(grant)
        modes.lease_ended(str(uuid.uuid4()), "expired")  # someone else's lease: ignored
        assert modes.mode == "teleop"
        modes.lease_ended(grant.id, reason)
        assert modes.mode == expected, reason
        assert modes.teleop(command(grant.id, 99)) == "stale_lease"


def test_agent_times_out_a_lease_without_renewal(tmp_path):
    clock = FakeClock()
    modes = controller(tmp_path, clock)
    grant = lease(ttl=1.0)
    modes.lease_granted(grant)
    clock.advance(1.5)
    modes.tick()
    assert modes.mode == "teleop"  # within expires_at + ttl grace
    modes.lease_granted(lease(ttl=1.0, lease_id=grant.id))  # renewal
    clock.advance(1.9)
    modes.tick()
    assert modes.mode == "teleop"
    clock.advance(0.2)
    modes.tick()
    assert modes.mode == "hold" and modes.lease is None
    assert modes.teleop(command(grant.id, 5)) == "stale_lease"


def test_resume_refused_while_leased_or_estopped(tmp_path):
    modes = controller(tmp_path)
    modes.lease_granted(lease())
    assert modes.command("resume") == (False, "a person holds the robot (lease); release it first")
    modes.command("estop", "test")
    assert modes.mode == "estopped"
    assert modes.command("resume")[0] is False
    assert modes.command("pause")[0] is False


def test_estop_latch_survives_restart_and_clear_goes_to_hold(tmp_path):
    modes = controller(tmp_path)
    assert modes.command("estop", "button") == (True, None)
    restarted = controller(tmp_path)  # a new process reading the same state dir
    assert restarted.mode == "estopped" and restarted.estopped
    assert restarted.command("resume")[0] is False
    restarted.command("clear_estop")
    assert restarted.mode == "hold" and not restarted.estopped
    assert controller(tmp_path).mode == "autonomous"  # the cleared latch is persisted too
    assert restarted.command("resume") == (True, None) and restarted.mode == "autonomous"


def test_unreadable_latch_file_fails_safe(tmp_path):
    (tmp_path / "estop.json").write_text("{not json")
    assert controller(tmp_path).mode == "estopped"


def test_estop_ends_the_lease_and_clear_goes_to_hold(tmp_path):
    clock = FakeClock()
    modes = controller(tmp_path, clock)
    grant = lease()
    modes.lease_granted(grant)
    assert modes.teleop(command(grant.id, 1, vx=0.1)) is None
    modes.command("estop", "Esc on the robot page")
    assert modes.mode == "estopped" and modes.lease is None and modes.teleop_velocity() is None
    assert modes.teleop(command(grant.id, 2, vx=0.1)) == "stale_lease"
    modes.lease_granted(lease(lease_id=grant.id))  # a renewal racing the e-stop revives nothing
    assert modes.lease is None and modes.dropped["lease_while_estopped"] == 1
    modes.command("clear_estop")
    assert modes.mode == "hold" and modes.lease is None
    # The operator's page kept sending its held keys: none of them moves the robot.
    for seq in range(3, 10):
        assert modes.teleop(command(grant.id, seq, vx=0.1)) == "stale_lease"
        clock.advance(0.05)
        assert modes.teleop_velocity() is None
    assert modes.mode == "hold" and not modes.policy_drives
    # Motion needs a new claim (a new lease) ...
    fresh = lease()
    modes.lease_granted(fresh)
    assert modes.mode == "teleop" and modes.teleop(command(fresh.id, 1, vx=0.1)) is None
    # ... or, once handed back, a resume for the policy.
    modes.lease_ended(fresh.id, "released")
    assert modes.mode == "autonomous"


def test_clear_estop_without_lease_holds_until_resume(tmp_path):
    modes = controller(tmp_path)
    modes.command("estop")
    modes.command("clear_estop")
    assert modes.mode == "hold" and not modes.policy_drives
    assert modes.command("resume") == (True, None) and modes.mode == "autonomous"


def test_lease_expiry_guard_against_clock_skew(tmp_path):
    clock = FakeClock()
    modes = ModeController(clock, EstopLatch(tmp_path), wall_time=lambda: time.time() - 3600)  # our wall clock is an hour behind
    grant = lease(ttl=2.0)
    modes.lease_granted(grant)
    clock.advance(3 * 2.0 + 2.0 + 0.1)
    modes.tick()
    assert modes.mode == "hold"
