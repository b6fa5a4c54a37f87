"""Demo data: a site, a line, the nut station (76 s takt) and its robots, the ALOHA insertion station
(12 s takt) and its robots, and the four demo users."""

from __future__ import annotations

from dataclasses import dataclass

from webapp.fleet.models import Line, Robot, Site, Station
from webapp.fleet.services import administration
from webapp.fleet.services.users import user_create_with_role

DEMO_USERS = ("supervisor", "operator", "labeler", "admin")
DEMO_CAMERAS = ["head", "wrist_left", "wrist_right"]
ALOHA_CAMERAS = ["top", "left_wrist", "right_wrist"]
ALOHA_ROBOT = "gym:gym_aloha/AlohaInsertion-v0"  # the agent's --robot for the ALOHA robots
SITE, LINE = "Die-casting workshop", "Line 1"


@dataclass(frozen=True)
class DemoFleet:
    station: Station
    tokens: dict[str, str]  # every robot's, by name
    aloha: tuple[str, ...] = ()  # the names of those that are ALOHA robots


ACTOR = "demo"


def _station(site: str, line: str, name: str, task: str, takt_s: float) -> Station:
    """The station, made through the administration services the first time (then reused)."""
    existing = Station.objects.filter(name=name, retired_at__isnull=True).select_related("line__site").first()
    if existing is not None:
        return existing
    if not Site.objects.filter(name=site, retired_at__isnull=True).exists():
        administration.site_create(name=site, actor=ACTOR)
    if not Line.objects.filter(site__name=site, name=line, retired_at__isnull=True).exists():
        administration.line_create(site=site, name=line, actor=ACTOR)
    return administration.station_create(site=site, line=line, name=name, task=task, takt_s=takt_s, actor=ACTOR)


def _robot(name: str, station: Station, cameras: list[str]) -> str:
    """The robot on `station` and a fresh token for it (shown once: the demo hands it to its agent)."""
    if Robot.objects.filter(name=name, retired_at__isnull=True).exists():
        administration.robot_assign(name=name, station=station.name, actor=ACTOR)
        return administration.robot_rotate_token(name=name, actor=ACTOR)
    _, token = administration.robot_create(name=name, station=station.name, actor=ACTOR)
    # The cameras the robot will declare, so its tiles have their places before its agent says hello.
    Robot.objects.filter(name=name).update(cameras=cameras)
    return token


def station_seed() -> Station:
    """The site, its line and the nut station (76 s takt)."""
    return _station(SITE, LINE, "nut-1", "install self-tapping nuts, both sides", 76.0)


def aloha_station_seed() -> Station:
    """The ALOHA insertion station on the same line: two arms insert a peg into a socket (12 s takt:
    the scripted expert takes about 8 s)."""
    return _station(SITE, LINE, "insertion-1", "insert the peg into the socket (ALOHA, MuJoCo)", 12.0)


def demo_seed(*, robots: int, password: str, aloha: int = 0) -> DemoFleet:
    station = station_seed()
    for username in DEMO_USERS:
        user_create_with_role(username=username, password=password, role=username)
    tokens: dict[str, str] = {}
    for index in range(1, robots + 1):
        tokens[f"r{index}"] = _robot(f"r{index}", station, DEMO_CAMERAS)
    aloha_names = []
    if aloha:
        insertion = aloha_station_seed()
        for index in range(1, aloha + 1):
            tokens[f"aloha{index}"] = _robot(f"aloha{index}", insertion, ALOHA_CAMERAS)
            aloha_names.append(f"aloha{index}")
    return DemoFleet(station=station, tokens=tokens, aloha=tuple(aloha_names))
