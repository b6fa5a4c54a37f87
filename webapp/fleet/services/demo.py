"""Demo data: a site, a line, the nut station (76 s takt), robots and the four demo users."""

from __future__ import annotations

from dataclasses import dataclass

from webapp.fleet.models import Line, Robot, Site, Station
from webapp.fleet.services.robots import robot_issue_token
from webapp.fleet.services.users import user_create_with_role

DEMO_USERS = ("supervisor", "operator", "labeler", "admin")
DEMO_CAMERAS = ["head", "wrist_left", "wrist_right"]


@dataclass(frozen=True)
class DemoFleet:
    station: Station
    tokens: dict[str, str]


def station_seed() -> Station:
    """The site, its line and the nut station (76 s takt)."""
    site, _ = Site.objects.get_or_create(name="Die-casting workshop")
    line, _ = Line.objects.get_or_create(site=site, name="Line 1")
    station, _ = Station.objects.get_or_create(
        name="nut-1", defaults={"line": line, "task": "install self-tapping nuts, both sides", "takt_s": 76.0}
    )
    return station


def demo_seed(*, robots: int, password: str) -> DemoFleet:
    station = station_seed()
    for username in DEMO_USERS:
        user_create_with_role(username=username, password=password, role=username)
    tokens: dict[str, str] = {}
    for index in range(1, robots + 1):
        name = f"r{index}"
        Robot.objects.get_or_create(name=name, defaults={"station": station, "cameras": DEMO_CAMERAS})
        tokens[name] = robot_issue_token(robot_name=name, actor="demo")
    return DemoFleet(station=station, tokens=tokens)
