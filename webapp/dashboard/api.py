"""HTTP endpoints for the KPIs and dashboard data, mounted at /api/dashboard/ (webapp/api.py).

Every operation here needs an entry in tests/dashboard/api_permissions.py (the permission matrix).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.http import HttpRequest
from ninja import Router
from ninja.errors import HttpError

from webapp.dashboard.selectors import kpi_filter, kpi_options, kpis
from webapp.fleet.api_auth import require

router = Router(tags=["dashboard"])


def _utc(moment: datetime | None, name: str) -> datetime | None:
    """A window edge in UTC (no offset given: UTC). PostgreSQL refuses offsets beyond ±15:59, which ISO
    8601 allows (found by schemathesis: `-18:44` was a 500)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise HttpError(422, f"{name} is out of range") from None


@router.get("/kpis")
def get_kpis(
    request: HttpRequest,
    start: datetime | None = None,
    end: datetime | None = None,
    hours: float | None = None,
    station: str | None = None,
    robot: str | None = None,
    policy: str | None = None,
    buckets: int = 24,
) -> dict[str, Any]:
    """KPIs for a window (default: the last 8 hours, one shift), filtered by station, robot, policy version."""
    require(request, "view")
    if hours is not None and not 0 < hours <= 24 * 92:
        raise HttpError(422, "hours must be in (0, 2208]")
    if not 1 <= buckets <= 200:
        raise HttpError(422, "buckets must be 1–200")
    f = kpi_filter(_utc(start, "start"), _utc(end, "end"), hours, station=station, robot=robot, policy=policy)
    if f.end <= f.start:
        raise HttpError(422, "the window's end must be after its start")
    result = kpis(f, buckets=buckets)
    result["options"] = kpi_options()
    return result
