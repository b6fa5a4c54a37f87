"""Fleet administration: sites, lines, stations and robots — create, edit, retire — and robot tokens.

Nothing is deleted: a retired object leaves the fleet (lists, pickers, the dashboard) but its episodes,
interventions, exports and audit rows keep naming it, so its name is not reused. Every change is
audited under the person who made it. Retiring what something still depends on is refused with the
reason (a station with robots on it, a robot someone holds or that waits for a person).
"""

from __future__ import annotations

import re

from django.db import IntegrityError, transaction
from django.utils import timezone

from foreman_protocol.messages import StationChanged, StationInfo
from webapp.fleet import realtime
from webapp.fleet.models import ControlSession, Intervention, Line, Robot, Site, Station
from webapp.fleet.services.audit import audit_record
from webapp.fleet.services.errors import Conflict, Invalid, NotFound
from webapp.fleet.services.robots import robot_issue_token

ROBOT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")  # the agent's state directory and URLs use it
MAX_TAKT_S = 24 * 3600.0


def _text(value: str, what: str, max_length: int = 100) -> str:
    value = " ".join(value.split())
    if not value:
        raise Invalid(f"{what} must not be empty")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise Invalid(f"{what} must not contain control characters")
    if "/" in value and what != "task":
        raise Invalid(f"{what} must not contain '/' (it is part of the API's paths)")
    if len(value) > max_length:
        raise Invalid(f"{what} is longer than {max_length} characters")
    return value


def _takt(takt_s: float) -> float:
    if not 0 < takt_s <= MAX_TAKT_S:
        raise Invalid(f"takt must be between 0 and {MAX_TAKT_S:.0f} s, got {takt_s:g}")
    return float(takt_s)


# ---------------------------------------------------------------- lookups (active objects only)


def site_get(name: str) -> Site:
    site = Site.objects.filter(name=name, retired_at__isnull=True).first()
    if site is None:
        raise NotFound(f"no site named {name!r}")
    return site


def line_get(site_name: str, line_name: str) -> Line:
    line = Line.objects.select_related("site").filter(site__name=site_name, name=line_name, retired_at__isnull=True).first()
    if line is None:
        raise NotFound(f"no line {line_name!r} at site {site_name!r}")
    return line


def station_get(name: str) -> Station:
    station = Station.objects.select_related("line__site").filter(name=name, retired_at__isnull=True).first()
    if station is None:
        raise NotFound(f"no station named {name!r}")
    return station


def robot_get(name: str) -> Robot:
    robot = Robot.objects.select_related("station").filter(name=name, retired_at__isnull=True).first()
    if robot is None:
        raise NotFound(f"no robot named {name!r}")
    return robot


def _taken(model: type[Site] | type[Station] | type[Robot], name: str, what: str) -> None:
    row = model.objects.filter(name=name).first()
    if row is not None:
        retired = f" (retired {row.retired_at:%Y-%m-%d}: names are kept with their history)" if row.retired_at else ""
        raise Conflict(f"a {what} named {name!r} exists{retired}")


# ---------------------------------------------------------------- sites and lines


def site_create(*, name: str, actor: str, source: str = "") -> Site:
    name = _text(name, "site name")
    _taken(Site, name, "site")
    site = Site.objects.create(name=name)
    audit_record(actor=actor, source=source, action="site_created", site=name)
    return site


def site_rename(*, name: str, new_name: str, actor: str, source: str = "") -> Site:
    site = site_get(name)
    new_name = _text(new_name, "site name")
    if new_name != site.name:
        _taken(Site, new_name, "site")
        site.name = new_name
        site.save(update_fields=["name"])
        audit_record(actor=actor, source=source, action="site_renamed", site=new_name, was=name)
    return site


def site_retire(*, name: str, actor: str, source: str = "") -> Site:
    with transaction.atomic():
        site = site_get(name)
        lines = list(site.lines.filter(retired_at__isnull=True).order_by("name").values_list("name", flat=True))
        if lines:
            raise Conflict(f"site {name!r} still has lines: retire {', '.join(lines)} first", lines=lines)
        site.retired_at = timezone.now()
        site.save(update_fields=["retired_at"])
        audit_record(actor=actor, source=source, action="site_retired", site=name)
    return site


def line_create(*, site: str, name: str, actor: str, source: str = "") -> Line:
    parent = site_get(site)
    name = _text(name, "line name")
    if Line.objects.filter(site=parent, name=name).exists():
        raise Conflict(f"site {site!r} has a line named {name!r}")
    line = Line.objects.create(site=parent, name=name)
    audit_record(actor=actor, source=source, action="line_created", site=site, line=name)
    return line


def line_rename(*, site: str, name: str, new_name: str, actor: str, source: str = "") -> Line:
    line = line_get(site, name)
    new_name = _text(new_name, "line name")
    if new_name != line.name:
        if Line.objects.filter(site=line.site, name=new_name).exists():
            raise Conflict(f"site {site!r} has a line named {new_name!r}")
        line.name = new_name
        line.save(update_fields=["name"])
        audit_record(actor=actor, source=source, action="line_renamed", site=site, line=new_name, was=name)
    return line


def line_retire(*, site: str, name: str, actor: str, source: str = "") -> Line:
    with transaction.atomic():
        line = line_get(site, name)
        stations = list(line.stations.filter(retired_at__isnull=True).order_by("name").values_list("name", flat=True))
        if stations:
            raise Conflict(f"line {name!r} still has stations: retire or move {', '.join(stations)} first", stations=stations)
        line.retired_at = timezone.now()
        line.save(update_fields=["retired_at"])
        audit_record(actor=actor, source=source, action="line_retired", site=site, line=name)
    return line


# ---------------------------------------------------------------- stations


def station_create(*, site: str, line: str, name: str, task: str, takt_s: float, actor: str, source: str = "") -> Station:
    parent = line_get(site, line)
    name = _text(name, "station name")
    _taken(Station, name, "station")
    station = Station.objects.create(line=parent, name=name, task=_text(task, "task", 200), takt_s=_takt(takt_s))
    audit_record(actor=actor, source=source, action="station_created", station=name, site=site, line=line, task=station.task, takt_s=station.takt_s)
    return station


def station_update(*, name: str, actor: str, source: str = "", new_name: str | None = None, task: str | None = None, takt_s: float | None = None,
                   site: str | None = None, line: str | None = None) -> Station:
    """Edit a station; `site` and `line` together move it to another line. Its connected robots
    are told its new name and takt at once (`station`); others get them with their next welcome."""
    with transaction.atomic():
        station = station_get(name)
        changes: dict[str, tuple[object, object]] = {}
        if new_name is not None and _text(new_name, "station name") != station.name:
            new_name = _text(new_name, "station name")
            _taken(Station, new_name, "station")
            changes["name"] = (station.name, new_name)
            station.name = new_name
        if task is not None and _text(task, "task", 200) != station.task:
            changes["task"] = (station.task, _text(task, "task", 200))
            station.task = _text(task, "task", 200)
        if takt_s is not None and _takt(takt_s) != station.takt_s:
            changes["takt_s"] = (station.takt_s, _takt(takt_s))
            station.takt_s = _takt(takt_s)
        if (site is None) != (line is None):
            raise Invalid("moving a station takes both its new site and line")
        if site is not None and line is not None:
            target = line_get(site, line)
            if target.pk != station.line_id:
                changes["line"] = (f"{station.line.site.name}/{station.line.name}", f"{site}/{line}")
                station.line = target
        if changes:
            station.save()
            audit_record(actor=actor, source=source, action="station_updated", station=station.name,
                         changes={field: {"from": old, "to": new} for field, (old, new) in changes.items()})
            if "name" in changes or "takt_s" in changes:
                for robot_name in station.robots.filter(retired_at__isnull=True).values_list("name", flat=True):
                    _tell_station(robot_name, station)
    return station


def _tell_station(robot_name: str, station: Station | None) -> None:
    """After commit, the robot's connection learns its station (its takt counts from then on)."""
    realtime.to_robot(robot_name, StationChanged(station=StationInfo(name=station.name, takt_s=station.takt_s) if station else None))


def station_retire(*, name: str, actor: str, source: str = "") -> Station:
    with transaction.atomic():
        station = station_get(name)
        robots = list(station.robots.filter(retired_at__isnull=True).order_by("name").values_list("name", flat=True))
        if robots:
            raise Conflict(f"station {name!r} still has robots: move or retire {', '.join(robots)} first", robots=robots)
        station.retired_at = timezone.now()
        station.save(update_fields=["retired_at"])
        audit_record(actor=actor, source=source, action="station_retired", station=name)
    return station


# ---------------------------------------------------------------- robots and their tokens


def robot_create(*, name: str, station: str | None, actor: str, source: str = "") -> tuple[Robot, str]:
    """A new robot on `station` (or none yet) and its first token, shown once."""
    if not ROBOT_NAME.match(name):
        raise Invalid(f"robot name {name!r}: lower-case letters, digits, - and _, at most 64, starting with a letter or digit")
    with transaction.atomic():
        _taken(Robot, name, "robot")
        place = station_get(station) if station else None
        try:
            robot = Robot.objects.create(name=name, station=place)
        except IntegrityError:  # created meanwhile by someone else
            raise Conflict(f"a robot named {name!r} exists") from None
        audit_record(actor=actor, source=source, action="robot_created", robot=robot, station=station or None)
        token = robot_issue_token(robot_name=name, actor=actor)
        realtime.broadcast_robot(name)
    return robot, token


def robot_assign(*, name: str, station: str | None, actor: str, source: str = "") -> Robot:
    """Put the robot on `station` (None: on none); a connected robot is told its new takt at once."""
    with transaction.atomic():
        robot = robot_get(name)
        place = station_get(station) if station else None
        was = robot.station.name if robot.station else None
        if (place.pk if place else None) != robot.station_id:
            robot.station = place
            robot.save(update_fields=["station"])
            audit_record(actor=actor, source=source, action="robot_assigned", robot=robot, station=station or None, was=was)
            realtime.broadcast_robot(robot.name)
            _tell_station(robot.name, place)
    return robot


def robot_rotate_token(*, name: str, actor: str, source: str = "") -> str:
    """A new token (shown once); the old one stops working and a connection made with it is closed."""
    robot_get(name)
    with transaction.atomic():
        token = robot_issue_token(robot_name=name, actor=actor)
        realtime.robot_revoked(name)
    return token


def robot_revoke_token(*, name: str, actor: str, source: str = "") -> Robot:
    """No token: the robot cannot connect, and its connection is closed (4401) until a new one is issued."""
    with transaction.atomic():
        robot = robot_get(name)
        if not robot.token_hash:
            raise Conflict(f"robot {name!r} has no token to revoke")
        prefix = robot.token_prefix
        robot.token_hash = ""
        robot.token_prefix = ""
        robot.save(update_fields=["token_hash", "token_prefix"])
        audit_record(actor=actor, source=source, action="robot_token_revoked", robot=robot, prefix=prefix)
        realtime.robot_revoked(name)
    return robot


def robot_retire(*, name: str, actor: str, source: str = "") -> Robot:
    """Take the robot out of the fleet: refused while a person holds it or an intervention waits."""
    with transaction.atomic():
        robot = Robot.objects.select_for_update().filter(name=name, retired_at__isnull=True).first()
        if robot is None:
            raise NotFound(f"no robot named {name!r}")
        lease = ControlSession.objects.select_related("user").filter(robot=robot, ended_at__isnull=True).first()
        if lease is not None:
            raise Conflict(f"{name} is held by {lease.user.username}: they must hand it back first", holder=lease.user.username)
        waiting = Intervention.objects.filter(robot=robot).exclude(state=Intervention.State.RESOLVED).count()
        if waiting:
            raise Conflict(f"{name} has {waiting} open intervention{'s' if waiting > 1 else ''}: resolve {'them' if waiting > 1 else 'it'} first",
                           open_interventions=waiting)
        robot.retired_at = timezone.now()
        robot.token_hash = ""
        robot.token_prefix = ""
        was = robot.station.name if robot.station else None
        robot.save(update_fields=["retired_at", "token_hash", "token_prefix"])
        audit_record(actor=actor, source=source, action="robot_retired", robot=robot, station=was)
        realtime.robot_revoked(name)
        realtime.broadcast_robot(name)  # with retired: true, the dashboards drop its tile
    return robot
