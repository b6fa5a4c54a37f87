"""KPIs for the dashboard, computed from the raw records (episodes, interventions, control sessions).

Definitions (docs/dashboard.md, "KPIs", says the same in words):
- success rate: successes / (successes + failures) among cycles that ended in the window; aborted
  cycles (e-stop, shutdown) are counted apart, never as failures of the policy.
- cycles per hour: cycles ended in the window / window hours (fleet total, and per robot seen).
- cycle time: duration of successful cycles, against the station's takt.
- interventions per hour, mean time between interventions (robot cycle time / interventions).
- autonomy ratio: 1 − (time under human control) / (robot cycle time).
- time to acknowledge / to takeover / intervention duration: raised → acknowledged / claimed / resolved.
- ROHE (return on human effort): successful cycles per hour of human control time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import median
from typing import Any

from django.db.models import Q, QuerySet

from webapp.fleet.models import ControlSession, Episode, Intervention, Robot, Station
from webapp.fleet.selectors import iso

MAX_ROWS = 200_000  # a month of a 16-robot line; beyond that, narrow the filters


@dataclass(frozen=True)
class KpiFilter:
    start: datetime
    end: datetime
    station: str | None = None
    robot: str | None = None
    policy: str | None = None

    @property
    def hours(self) -> float:
        return max(1e-9, (self.end - self.start).total_seconds() / 3600)


def _episodes(f: KpiFilter) -> QuerySet[Episode]:
    items = Episode.objects.filter(ended_at__gte=f.start, ended_at__lt=f.end).exclude(outcome=Episode.Outcome.RUNNING)
    if f.station:
        items = items.filter(station__name=f.station)
    if f.robot:
        items = items.filter(robot__name=f.robot)
    if f.policy:
        items = items.filter(policy_version=f.policy)
    return items


def _interventions(f: KpiFilter) -> QuerySet[Intervention]:
    items = Intervention.objects.filter(raised_at__gte=f.start, raised_at__lt=f.end)
    if f.station:
        items = items.filter(robot__station__name=f.station)
    if f.robot:
        items = items.filter(robot__name=f.robot)
    if f.policy:
        items = items.filter(episode__policy_version=f.policy)
    return items


def _sessions(f: KpiFilter) -> QuerySet[ControlSession]:
    items = ControlSession.objects.filter(started_at__lt=f.end).filter(Q(ended_at__isnull=True) | Q(ended_at__gt=f.start))
    if f.station:
        items = items.filter(robot__station__name=f.station)
    if f.robot:
        items = items.filter(robot__name=f.robot)
    return items


def _seconds(a: datetime | None, b: datetime | None) -> float | None:
    if a is None or b is None:
        return None
    return max(0.0, (b - a).total_seconds())


def _summary(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "median": None, "p95": None, "count": 0}
    ordered = sorted(values)
    return {
        "mean": round(sum(ordered) / len(ordered), 2),
        "median": round(median(ordered), 2),
        "p95": round(ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)], 2),
        "count": len(ordered),
    }


def _rate(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 4) if denominator > 0 else None


def kpis(f: KpiFilter, buckets: int = 24) -> dict[str, Any]:
    """Every KPI of the window, its time series (`buckets` equal slices) and its breakdowns."""
    now_end = f.end
    episodes = list(_episodes(f).select_related("robot", "station").order_by("ended_at")[:MAX_ROWS])
    interventions = list(_interventions(f).order_by("raised_at")[:MAX_ROWS])
    policy_episode_ids = {e.id for e in episodes} if f.policy else None
    sessions = list(_sessions(f).select_related("user")[:MAX_ROWS])

    ended = [e for e in episodes if e.outcome in (Episode.Outcome.SUCCESS, Episode.Outcome.FAILURE)]
    successes = [e for e in ended if e.outcome == Episode.Outcome.SUCCESS]
    aborted = [e for e in episodes if e.outcome == Episode.Outcome.ABORTED]
    robot_seconds = sum(e.duration_s or 0.0 for e in episodes)

    def clipped(session: ControlSession) -> float:
        start = max(session.started_at, f.start)
        end = min(session.ended_at or now_end, f.end)
        return max(0.0, (end - start).total_seconds())

    if policy_episode_ids is not None:
        # Human time on a policy: sessions that overlap that policy's cycles on the same robot.
        spans = [(e.robot_id, e.started_at, e.ended_at) for e in episodes]
        sessions = [s for s in sessions if any(r == s.robot_id and a < (s.ended_at or now_end) and b > s.started_at for r, a, b in spans)]
    human_seconds = sum(clipped(s) for s in sessions)

    takts = sorted({e.station.takt_s for e in episodes if e.station is not None}) or sorted(
        set(Station.objects.filter(name=f.station).values_list("takt_s", flat=True)) if f.station else []) or [76.0]
    cycle_times = [e.duration_s for e in successes if e.duration_s is not None]
    robots_seen = sorted({e.robot.name for e in episodes})

    summary = {
        "cycles": len(ended),
        "successes": len(successes),
        "failures": len(ended) - len(successes),
        "aborted": len(aborted),
        "success_rate": _rate(len(successes), len(ended)),
        "cycles_per_hour": round(len(ended) / f.hours, 2),
        "cycles_per_robot_hour": round(len(ended) / f.hours / len(robots_seen), 2) if robots_seen else None,
        "cycle_time_s": _summary(cycle_times),
        "takt_s": takts[0] if len(takts) == 1 else takts,
        "within_takt": _rate(sum(1 for c in cycle_times if c <= min(takts)), len(cycle_times)),
        "interventions": len(interventions),
        "interventions_per_hour": round(len(interventions) / f.hours, 2),
        "mtbi_s": round(robot_seconds / len(interventions), 1) if interventions else None,
        "autonomy_ratio": round(max(0.0, 1 - human_seconds / robot_seconds), 4) if robot_seconds > 0 else None,
        "human_hours": round(human_seconds / 3600, 3),
        "robot_hours": round(robot_seconds / 3600, 3),
        "time_to_ack_s": _summary([s for i in interventions if (s := _seconds(i.raised_at, i.acknowledged_at)) is not None]),
        "time_to_takeover_s": _summary([s for i in interventions if (s := _seconds(i.raised_at, i.claimed_at)) is not None]),
        "intervention_duration_s": _summary([s for i in interventions if (s := _seconds(i.raised_at, i.resolved_at)) is not None]),
        "rohe": round(len(successes) / (human_seconds / 3600), 1) if human_seconds > 0 else None,
        "actions_clamped": sum(e.actions_clamped for e in episodes),
        "cycles_with_clamped_actions": sum(1 for e in episodes if e.actions_clamped),
        "robots": robots_seen,
    }

    # Time series: equal slices of the window.
    step = (f.end - f.start) / buckets
    edges = [f.start + step * i for i in range(buckets + 1)]

    def bucket_of(moment: datetime) -> int:
        return min(buckets - 1, max(0, int((moment - f.start) / step)))

    cycles = [0] * buckets
    wins = [0] * buckets
    triggers: dict[str, list[int]] = {}
    for e in ended:
        index = bucket_of(e.ended_at)
        cycles[index] += 1
        wins[index] += e.outcome == Episode.Outcome.SUCCESS
    for i in interventions:
        triggers.setdefault(i.trigger, [0] * buckets)[bucket_of(i.raised_at)] += 1
    series = {
        "t": [edge.timestamp() for edge in edges[:-1]],
        "bucket_s": step.total_seconds(),
        "cycles": cycles,
        "success_rate": [round(w / c, 4) if c else None for w, c in zip(wins, cycles, strict=True)],
        "interventions": triggers,
    }

    # Cycle-time histogram (successful cycles), 2-second bins up to past the takt.
    top = max([*cycle_times, max(takts)]) if cycle_times else max(takts)
    bin_s = 2.0
    bins = int(math.ceil(top / bin_s)) + 1
    histogram = [0] * bins
    for c in cycle_times:
        histogram[min(bins - 1, int(c // bin_s))] += 1

    def breakdown(key: str) -> list[dict[str, Any]]:
        groups: dict[str, list[Episode]] = {}
        for e in ended:
            groups.setdefault(getattr(e, key) if key != "robot" else e.robot.name, []).append(e)
        rows = []
        for name, items in sorted(groups.items()):
            ok = sum(1 for e in items if e.outcome == Episode.Outcome.SUCCESS)
            modes: dict[str, int] = {}
            for e in items:
                if e.outcome == Episode.Outcome.FAILURE:
                    modes[e.failure_mode or "other"] = modes.get(e.failure_mode or "other", 0) + 1
            times = [e.duration_s for e in items if e.outcome == Episode.Outcome.SUCCESS and e.duration_s is not None]
            rows.append({"name": name or "(none)", "cycles": len(items), "success_rate": _rate(ok, len(items)),
                         "mean_cycle_s": round(sum(times) / len(times), 2) if times else None, "failure_modes": modes,
                         "interventions": sum(1 for e in items if e.intervened),
                         "actions_clamped": sum(e.actions_clamped for e in items)})
        return rows

    return {
        "window": {"start": iso(f.start), "end": iso(f.end), "hours": round(f.hours, 3)},
        "filters": {"station": f.station, "robot": f.robot, "policy": f.policy},
        "kpis": summary,
        "series": series,
        "cycle_time_histogram": {"bin_s": bin_s, "counts": histogram, "takt_s": min(takts)},
        "by_policy": breakdown("policy_version"),
        "by_robot": breakdown("robot"),
        "truncated": len(episodes) >= MAX_ROWS or len(interventions) >= MAX_ROWS,
    }


def kpi_filter(start: datetime | None, end: datetime | None, hours: float | None, **names: str | None) -> KpiFilter:
    """The window: [start, end), or the last `hours` (default 8, one shift) up to `end` or now."""
    from django.utils import timezone

    end = end or timezone.now()
    if start is None:
        start = end - timedelta(hours=hours or 8.0)
    return KpiFilter(start=start, end=end, **{k: v or None for k, v in names.items()})


def kpi_options() -> dict[str, list[str]]:
    """What the KPI filters can choose from: every station, robot and policy version that ran an episode."""
    return {
        "stations": list(Station.objects.order_by("name").values_list("name", flat=True)),
        "robots": list(Robot.objects.order_by("name").values_list("name", flat=True)),
        "policies": sorted(set(Episode.objects.exclude(policy_version="").values_list("policy_version", flat=True).distinct())),
    }
