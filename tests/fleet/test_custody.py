"""Control custody, the safety core: exclusive leases, expiry, hand-back, e-stop latch, audit."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from webapp.fleet.models import AuditEvent, ControlSession, Intervention, Robot
from webapp.fleet.services import custody, interventions
from webapp.fleet.services.errors import Conflict, Estopped, Forbidden, RobotOffline, StaleLease

pytestmark = pytest.mark.django_db


@pytest.fixture
def online(fleet):
    Robot.objects.update(online=True, connection="test")
    return fleet


def actions(robot: str = "r1") -> list[str]:
    """What happened to the robot after the fixture's seed (whose robot_created and token rows say "demo")."""
    return list(AuditEvent.objects.filter(robot__name=robot).exclude(actor="demo").order_by("at", "id").values_list("action", flat=True))


def test_claim_grants_exclusive_lease_and_records_intervention(online, users):
    lease = custody.robot_claim_control(robot_name="r1", user=users["operator"])
    assert lease.ended_at is None and lease.expires_at > timezone.now()
    item = Intervention.objects.get(robot__name="r1")
    assert item.trigger == "supervisor" and item.state == "claimed" and item.claimed_by == users["operator"]
    assert "lease_granted" in actions()


def test_second_claim_is_refused_and_names_the_holder(online, users):
    custody.robot_claim_control(robot_name="r1", user=users["operator"])
    with pytest.raises(Conflict) as refused:
        custody.robot_claim_control(robot_name="r1", user=users["admin"])
    assert refused.value.data["holder"] == "operator"
    assert "operator" in refused.value.message
    assert ControlSession.objects.filter(robot__name="r1", ended_at__isnull=True).count() == 1


def test_admin_takeover_ends_old_lease_and_is_audited(online, users):
    first = custody.robot_claim_control(robot_name="r1", user=users["operator"])
    second = custody.robot_claim_control(robot_name="r1", user=users["admin"], takeover=True)
    first.refresh_from_db()
    assert first.end_reason == "taken_over" and second.ended_at is None
    assert "takeover" in actions()


def test_only_admin_may_take_over(online, users):
    with pytest.raises(Forbidden):
        custody.robot_claim_control(robot_name="r1", user=users["operator"], takeover=True)


@pytest.mark.parametrize("role", ["supervisor", "labeler"])
def test_roles_without_control_cannot_claim(online, users, role):
    with pytest.raises(Forbidden):
        custody.robot_claim_control(robot_name="r1", user=users[role])
    assert not ControlSession.objects.exists()


def test_cannot_claim_offline_or_estopped_robot(fleet, users):
    with pytest.raises(RobotOffline):
        custody.robot_claim_control(robot_name="r1", user=users["operator"])
    Robot.objects.update(online=True)
    custody.robot_estop(robot_name="r1", actor=users["supervisor"])
    with pytest.raises(Estopped):
        custody.robot_claim_control(robot_name="r1", user=users["operator"])


def test_release_hands_back_and_resolves_the_intervention(online, users):
    item = interventions.intervention_raise(
        robot_name="r1", intervention_id="6f1c0f8e-6b1a-4c1e-9a51-2f1f3a0a7c11", trigger="fault",
        severity="high", detail="torque out of range", episode_id=None,
    )
    lease = custody.robot_claim_control(robot_name="r1", user=users["operator"])
    item.refresh_from_db()
    assert item.state == "claimed" and item.acknowledged_by == users["operator"]
    custody.lease_release(robot_name="r1", lease_id=str(lease.id), user=users["operator"])
    lease.refresh_from_db()
    item.refresh_from_db()
    assert lease.end_reason == "released"
    assert item.state == "resolved" and item.resolution == "handed_back" and item.resolved_by == users["operator"]
    assert item.raised_at <= item.acknowledged_at <= item.claimed_at <= item.resolved_at


def test_release_of_someone_elses_lease_is_forbidden(online, users):
    from webapp.fleet.services.users import user_create_with_role

    other = user_create_with_role(username="operator2", password="x" * 10, role="operator")
    lease = custody.robot_claim_control(robot_name="r1", user=users["operator"])
    with pytest.raises(Forbidden):
        custody.lease_release(robot_name="r1", lease_id=str(lease.id), user=other)
    with pytest.raises(Forbidden):
        custody.lease_heartbeat(robot_name="r1", lease_id=str(lease.id), user=other)


def test_heartbeat_extends_and_stale_lease_ids_are_refused(online, users):
    lease = custody.robot_claim_control(robot_name="r1", user=users["operator"])
    before = lease.expires_at
    renewed = custody.lease_heartbeat(robot_name="r1", lease_id=str(lease.id), user=users["operator"])
    assert renewed.expires_at >= before
    with pytest.raises(StaleLease):
        custody.lease_heartbeat(robot_name="r1", lease_id="00000000-0000-0000-0000-000000000000", user=users["operator"])


def test_expired_lease_ends_with_hold_and_cannot_be_renewed(online, users):
    lease = custody.robot_claim_control(robot_name="r1", user=users["operator"])
    ControlSession.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(StaleLease):
        custody.lease_heartbeat(robot_name="r1", lease_id=str(lease.id), user=users["operator"])
    lease.refresh_from_db()
    assert lease.end_reason == "expired"
    item = Intervention.objects.get(robot__name="r1")
    assert item.state == "acknowledged"  # custody lost: needs a person again, not resolved


def test_sweep_expires_only_stale_leases(online, users):
    stale = custody.robot_claim_control(robot_name="r1", user=users["operator"])
    fresh = custody.robot_claim_control(robot_name="r2", user=users["operator"])
    ControlSession.objects.filter(pk=stale.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert custody.leases_expire_stale() == 1
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.end_reason == "expired" and fresh.ended_at is None
    assert custody.lease_expire_if_stale(str(fresh.id)) is False


def test_operator_disconnect_ends_leases_of_that_socket_only(online, users):
    mine = custody.robot_claim_control(robot_name="r1", user=users["operator"], holder_channel="chan-a")
    other = custody.robot_claim_control(robot_name="r2", user=users["admin"], holder_channel="chan-b")
    assert custody.leases_end_for_channel("chan-a") == 1
    mine.refresh_from_db()
    other.refresh_from_db()
    assert mine.end_reason == "operator_disconnected" and other.ended_at is None


def test_estop_latches_until_an_authorized_clear(online, users):
    custody.robot_estop(robot_name="r1", actor=users["operator"], reason="hand in cell")
    robot = Robot.objects.get(name="r1")
    assert robot.estopped and robot.estopped_by == "operator"
    assert Intervention.objects.get(robot=robot, trigger="estop").state == "raised"
    # Still latched after another e-stop and a resume attempt.
    custody.robot_estop(robot_name="r1", actor=users["supervisor"])
    with pytest.raises(Estopped):
        custody.robot_command(robot_name="r1", user=users["supervisor"], command="resume")
    with pytest.raises(Forbidden):
        custody.robot_clear_estop(robot_name="r1", user=users["operator"])
    robot.refresh_from_db()
    assert robot.estopped
    custody.robot_clear_estop(robot_name="r1", user=users["supervisor"])
    robot.refresh_from_db()
    assert not robot.estopped
    assert Intervention.objects.get(robot=robot, trigger="estop").resolution == "estop_cleared"
    assert actions()[-3:] == ["estop", "estop", "clear_estop"]
    with pytest.raises(Conflict):
        custody.robot_clear_estop(robot_name="r1", user=users["supervisor"])


def test_labeler_cannot_estop(online, users):
    with pytest.raises(Forbidden):
        custody.robot_estop(robot_name="r1", actor=users["labeler"])


def test_resume_refused_while_someone_holds_the_robot(online, users):
    custody.robot_claim_control(robot_name="r1", user=users["operator"])
    with pytest.raises(Conflict) as refused:
        custody.robot_command(robot_name="r1", user=users["supervisor"], command="resume")
    assert refused.value.data["holder"] == "operator"


def test_resume_settles_open_interventions(online, users):
    interventions.intervention_raise(
        robot_name="r1", intervention_id="0d5e2b8a-3c7f-4a11-8c3e-4b7d2e6f9a01", trigger="policy_uncertainty",
        severity="medium", detail="", episode_id=None,
    )
    custody.robot_command(robot_name="r1", user=users["supervisor"], command="resume")
    assert Intervention.objects.get(robot__name="r1").resolution == "resumed"


@pytest.mark.parametrize("source", ["dashboard", "robot"])
def test_estop_ends_every_lease_and_clear_leaves_the_robot_without_one(online, users, source):
    lease = custody.robot_claim_control(robot_name="r1", user=users["operator"])
    actor = users["supervisor"] if source == "dashboard" else None  # None: the robot reported its own latch
    custody.robot_estop(robot_name="r1", actor=actor, reason="hand in the cell")
    lease.refresh_from_db()
    assert lease.ended_at is not None and lease.end_reason == "estop"
    ended = AuditEvent.objects.get(action="lease_ended")
    assert ended.detail["reason"] == "estop" and ended.detail["lease"] == str(lease.id)
    assert ended.actor == ("supervisor" if actor else "robot:r1")
    # The operator's page keeps heartbeating: nothing revives the lease.
    with pytest.raises(StaleLease):
        custody.lease_heartbeat(robot_name="r1", lease_id=str(lease.id), user=users["operator"])
    with pytest.raises(StaleLease):
        custody.lease_holder_check(robot_name="r1", lease_id=str(lease.id), user=users["operator"])
    custody.robot_clear_estop(robot_name="r1", user=users["supervisor"])
    assert not ControlSession.objects.filter(robot__name="r1", ended_at__isnull=True).exists()
    with pytest.raises(StaleLease):
        custody.lease_heartbeat(robot_name="r1", lease_id=str(lease.id), user=users["operator"])
    # Motion needs a new claim; the person's takeover is still waiting for someone.
    fresh = custody.robot_claim_control(robot_name="r1", user=users["operator"])
    assert fresh.id != lease.id and fresh.ended_at is None


def test_every_transition_is_audited(online, users):
    lease = custody.robot_claim_control(robot_name="r1", user=users["operator"])
    custody.lease_heartbeat(robot_name="r1", lease_id=str(lease.id), user=users["operator"])
    custody.lease_release(robot_name="r1", lease_id=str(lease.id), user=users["operator"])
    custody.robot_estop(robot_name="r1", actor=users["supervisor"])
    custody.robot_clear_estop(robot_name="r1", user=users["supervisor"])
    assert [a for a in actions() if a != "robot_token_issued"] == [
        "lease_granted", "lease_ended", "estop", "clear_estop",
    ]
    assert AuditEvent.objects.get(action="lease_ended").detail["reason"] == "released"
    event = AuditEvent.objects.filter(action="lease_granted").get()
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()


@pytest.mark.django_db(transaction=True)
def test_simultaneous_claims_have_exactly_one_winner(online, users):
    """Two operators claim the same robot at the same instant on real Postgres: one lease, one refusal."""
    from webapp.fleet.services.users import user_create_with_role

    other = user_create_with_role(username="operator2", password="x" * 10, role="operator")
    barrier = threading.Barrier(2)
    results: list[str] = []

    def claim(user):
        try:
            barrier.wait(timeout=5)
            custody.robot_claim_control(robot_name="r1", user=user)
            results.append("won")
        except Conflict:
            results.append("refused")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claim, args=(u,)) for u in (users["operator"], other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert sorted(results) == ["refused", "won"]
    assert ControlSession.objects.filter(robot__name="r1", ended_at__isnull=True).count() == 1
