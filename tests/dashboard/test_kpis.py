"""KPIs from raw records, checked against numbers worked out by hand (Postgres)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client

from webapp.dashboard.selectors import KpiFilter, kpis
from webapp.fleet.models import ControlSession, Episode, Intervention, Robot

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)  # shift start


def episode(robot: Robot, minute: float, duration_s: float, outcome: str, policy: str = "bc-sim-v1", failure_mode: str = "",
            intervened: bool = False, actions_clamped: int = 0) -> Episode:
    ended = T0 + timedelta(minutes=minute)
    return Episode.objects.create(id=uuid.uuid4(), robot=robot, station=robot.station, policy_version=policy,
                                  started_at=ended - timedelta(seconds=duration_s), ended_at=ended, duration_s=duration_s,
                                  outcome=outcome, failure_mode=failure_mode, intervened=intervened, actions_clamped=actions_clamped)


@pytest.fixture
def records(fleet: Any, users: dict[str, Any]) -> dict[str, Any]:
    r1, r2 = Robot.objects.get(name="r1"), Robot.objects.get(name="r2")
    # r1: 3 successes (60, 70, 80 s) and one failure; r2: one success on a new policy and one aborted cycle.
    episode(r1, 10, 60, "success")
    episode(r1, 20, 70, "success")
    episode(r1, 30, 80, "success")
    failed = episode(r1, 40, 90, "failure", failure_mode="cross_threaded", intervened=True)
    episode(r2, 50, 50, "success", policy="bc-sim-v2", actions_clamped=12)
    episode(r2, 55, 30, "aborted", policy="bc-sim-v2")
    raised = T0 + timedelta(minutes=39)
    Intervention.objects.create(robot=r1, episode=failed, trigger="fault", severity="high", state="resolved", raised_at=raised,
                                acknowledged_at=raised + timedelta(seconds=4), acknowledged_by=users["operator"],
                                claimed_at=raised + timedelta(seconds=10), claimed_by=users["operator"],
                                resolved_at=raised + timedelta(seconds=40), resolved_by=users["operator"])
    Intervention.objects.create(robot=r2, trigger="policy_uncertainty", severity="medium", state="raised",
                                raised_at=T0 + timedelta(minutes=50))
    ControlSession.objects.create(robot=r1, user=users["operator"], started_at=raised + timedelta(seconds=10),
                                  expires_at=raised + timedelta(seconds=45), ended_at=raised + timedelta(seconds=40), end_reason="released")
    # Outside the window: must not count.
    episode(r1, 61, 60, "success")
    return {"r1": r1, "r2": r2}


def test_shift_kpis_match_the_records(records: dict[str, Any]) -> None:
    result = kpis(KpiFilter(start=T0, end=T0 + timedelta(hours=1)), buckets=6)
    k = result["kpis"]
    assert (k["cycles"], k["successes"], k["failures"], k["aborted"]) == (5, 4, 1, 1)
    assert k["success_rate"] == 0.8
    assert k["cycles_per_hour"] == 5.0
    assert k["cycles_per_robot_hour"] == 2.5
    assert k["cycle_time_s"] == {"mean": 65.0, "median": 65.0, "p95": 80.0, "count": 4}
    assert k["takt_s"] == 76.0 and k["within_takt"] == 0.75
    assert k["interventions"] == 2 and k["interventions_per_hour"] == 2.0
    robot_seconds = 60 + 70 + 80 + 90 + 50 + 30
    assert k["mtbi_s"] == robot_seconds / 2
    assert k["autonomy_ratio"] == round(1 - 30 / robot_seconds, 4)
    assert k["time_to_ack_s"]["mean"] == 4.0 and k["time_to_ack_s"]["count"] == 1
    assert k["time_to_takeover_s"]["median"] == 10.0
    assert k["intervention_duration_s"]["p95"] == 40.0
    assert k["rohe"] == round(4 / (30 / 3600), 1)  # successful cycles per hour of human control
    assert (k["actions_clamped"], k["cycles_with_clamped_actions"]) == (12, 1)
    # Series: 10-minute buckets.
    series = result["series"]
    assert series["cycles"] == [0, 1, 1, 1, 1, 1]
    assert series["success_rate"] == [None, 1.0, 1.0, 1.0, 0.0, 1.0]
    assert series["interventions"] == {"fault": [0, 0, 0, 1, 0, 0], "policy_uncertainty": [0, 0, 0, 0, 0, 1]}
    histogram = result["cycle_time_histogram"]
    assert sum(histogram["counts"]) == 4 and histogram["counts"][30] == 1  # 60 s lands in the 60–62 s bin
    by_policy = {row["name"]: row for row in result["by_policy"]}
    assert by_policy["bc-sim-v1"]["success_rate"] == 0.75 and by_policy["bc-sim-v1"]["failure_modes"] == {"cross_threaded": 1}
    assert by_policy["bc-sim-v2"]["cycles"] == 1 and by_policy["bc-sim-v2"]["success_rate"] == 1.0
    assert by_policy["bc-sim-v2"]["actions_clamped"] == 12 and by_policy["bc-sim-v1"]["actions_clamped"] == 0


def test_filters_narrow_every_figure(records: dict[str, Any]) -> None:
    start, end = T0, T0 + timedelta(hours=1)
    only_r2 = kpis(KpiFilter(robot="r2", start=start, end=end))["kpis"]
    assert (only_r2["cycles"], only_r2["interventions"], only_r2["human_hours"], only_r2["rohe"]) == (1, 1, 0.0, None)
    v1 = kpis(KpiFilter(policy="bc-sim-v1", start=start, end=end))["kpis"]
    assert v1["cycles"] == 4 and v1["interventions"] == 1 and v1["human_hours"] == round(30 / 3600, 3)
    empty = kpis(KpiFilter(station="nowhere", start=start, end=end))["kpis"]
    assert empty["cycles"] == 0 and empty["success_rate"] is None and empty["autonomy_ratio"] is None


def test_kpi_endpoint(records: dict[str, Any], users: dict[str, Any]) -> None:
    client = Client()
    client.force_login(users["supervisor"])
    response = client.get("/api/dashboard/kpis", {"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat(), "buckets": 6})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["kpis"]["cycles"] == 5 and body["options"]["policies"] == ["bc-sim-v1", "bc-sim-v2"]
    assert client.get("/api/dashboard/kpis", {"buckets": 0}).status_code == 422
    bad = client.get("/api/dashboard/kpis", {"start": T0.isoformat(), "end": T0.isoformat()})
    assert bad.status_code == 422 and "after its start" in bad.json()["detail"]
    client.force_login(users["labeler"])
    assert client.get("/api/dashboard/kpis").status_code == 403
