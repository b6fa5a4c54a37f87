"""Demo data: a site, a line, the nut station (76 s takt) and its robots, the ALOHA insertion station
(12 s takt) and its robots, and the four demo users."""

from __future__ import annotations

from dataclasses import dataclass

from webapp.fleet.models import Line, Robot, Site, Station
from webapp.fleet.services.robots import robot_issue_token
from webapp.fleet.services.users import user_create_with_role

DEMO_USERS = ("supervisor", "operator", "labeler", "admin")
DEMO_CAMERAS = ["head", "wrist_left", "wrist_right"]
ALOHA_CAMERAS = ["top", "left_wrist", "right_wrist"]
ALOHA_ROBOT = "gym:gym_aloha/AlohaInsertion-v0"  # the agent's --robot for the ALOHA robots


@dataclass(frozen=True)
class DemoFleet:
    station: Station
    tokens: dict[str, str]  # every robot's, by name
    aloha: tuple[str, ...] = ()  # the names of those that are ALOHA robots


def station_seed() -> Station:
    """The site, its line and the nut station (76 s takt)."""
    site, _ = Site.objects.get_or_create(name="Die-casting workshop")
    line, _ = Line.objects.get_or_create(site=site, name="Line 1")
    station, _ = Station.objects.get_or_create(
        name="nut-1", defaults={"line": line, "task": "install self-tapping nuts, both sides", "takt_s": 76.0}
    )
    return station


def aloha_station_seed() -> Station:
    """The ALOHA insertion station on the same line: two arms insert a peg into a socket (12 s takt:
    the scripted expert takes about 8 s)."""
    line = station_seed().line
    station, _ = Station.objects.get_or_create(
        name="insertion-1", defaults={"line": line, "task": "insert the peg into the socket (ALOHA, MuJoCo)", "takt_s": 12.0}
    )
    return station


def demo_seed(*, robots: int, password: str, aloha: int = 0) -> DemoFleet:
    station = station_seed()
    for username in DEMO_USERS:
        user_create_with_role(username=username, password=password, role=username)
    tokens: dict[str, str] = {}
    for index in range(1, robots + 1):
        name = f"r{index}"
        Robot.objects.get_or_create(name=name, defaults={"station": station, "cameras": DEMO_CAMERAS})
        tokens[name] = robot_issue_token(robot_name=name, actor="demo")
    aloha_names = []
    if aloha:
        insertion = aloha_station_seed()
        for index in range(1, aloha + 1):
            name = f"aloha{index}"
            Robot.objects.get_or_create(name=name, defaults={"station": insertion, "cameras": ALOHA_CAMERAS})
            tokens[name] = robot_issue_token(robot_name=name, actor="demo")
            aloha_names.append(name)
    return DemoFleet(station=station, tokens=tokens, aloha=tuple(aloha_names))
