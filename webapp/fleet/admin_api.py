"""Fleet administration over HTTP (mounted at /api/fleet/): sites, lines, stations and robots —
create, edit, retire — and robot tokens (issued and rotated tokens are in the answer, once).
Admins only (`administer`). Views are thin: a permission check, then one service call."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router, Schema
from pydantic import Field

from webapp.fleet import selectors
from webapp.fleet.api_auth import require, source
from webapp.fleet.services import administration as admin

router = Router(tags=["fleet administration"])


class NameIn(Schema):
    name: str = Field(max_length=100)


class StationIn(Schema):
    site: str = Field(max_length=100)
    line: str = Field(max_length=100)
    name: str = Field(max_length=100)
    task: str = Field(max_length=200)
    takt_s: float = Field(gt=0)


class StationPatch(Schema):
    name: str | None = Field(default=None, max_length=100)
    task: str | None = Field(default=None, max_length=200)
    takt_s: float | None = Field(default=None, gt=0)
    site: str | None = Field(default=None, max_length=100)  # with line: move the station to that line
    line: str | None = Field(default=None, max_length=100)


class RobotIn(Schema):
    name: str = Field(max_length=64)
    station: str | None = Field(default=None, max_length=100)


class RobotPatch(Schema):
    station: str | None = Field(max_length=100)  # null: on no station


class LayoutRobot(Schema):
    name: str
    station: str | None
    online: bool
    token_prefix: str | None
    last_seen: str | None
    policy_version: str | None
    declared: str | None


class LayoutStation(Schema):
    name: str
    task: str
    takt_s: float
    robots: list[LayoutRobot]


class LayoutLine(Schema):
    name: str
    stations: list[LayoutStation]


class LayoutSite(Schema):
    name: str
    lines: list[LayoutLine]


class LayoutOut(Schema):
    sites: list[LayoutSite]
    unassigned: list[LayoutRobot]


class DoneOut(Schema):
    ok: bool
    detail: str


class TokenOut(Schema):
    robot: str
    token: str  # shown once: only its hash is kept
    prefix: str
    detail: str


@router.get("/layout", response=LayoutOut)
def layout(request: HttpRequest) -> Any:
    require(request, "administer")
    return selectors.fleet_layout()


@router.post("/sites", response=DoneOut)
def create_site(request: HttpRequest, body: NameIn) -> Any:
    user = require(request, "administer")
    site = admin.site_create(name=body.name, actor=user.username, source=source(request))
    return {"ok": True, "detail": f"site {site.name} created"}


@router.patch("/sites/{site}", response=DoneOut)
def rename_site(request: HttpRequest, site: str, body: NameIn) -> Any:
    user = require(request, "administer")
    renamed = admin.site_rename(name=site, new_name=body.name, actor=user.username, source=source(request))
    return {"ok": True, "detail": f"site {site} is now {renamed.name}"}


@router.post("/sites/{site}/retire", response=DoneOut)
def retire_site(request: HttpRequest, site: str) -> Any:
    user = require(request, "administer")
    admin.site_retire(name=site, actor=user.username, source=source(request))
    return {"ok": True, "detail": f"site {site} retired"}


@router.post("/sites/{site}/lines", response=DoneOut)
def create_line(request: HttpRequest, site: str, body: NameIn) -> Any:
    user = require(request, "administer")
    line = admin.line_create(site=site, name=body.name, actor=user.username, source=source(request))
    return {"ok": True, "detail": f"line {line.name} created at {site}"}


@router.patch("/sites/{site}/lines/{line}", response=DoneOut)
def rename_line(request: HttpRequest, site: str, line: str, body: NameIn) -> Any:
    user = require(request, "administer")
    renamed = admin.line_rename(site=site, name=line, new_name=body.name, actor=user.username, source=source(request))
    return {"ok": True, "detail": f"line {line} is now {renamed.name}"}


@router.post("/sites/{site}/lines/{line}/retire", response=DoneOut)
def retire_line(request: HttpRequest, site: str, line: str) -> Any:
    user = require(request, "administer")
    admin.line_retire(site=site, name=line, actor=user.username, source=source(request))
    return {"ok": True, "detail": f"line {line} retired"}


@router.post("/stations", response=DoneOut)
def create_station(request: HttpRequest, body: StationIn) -> Any:
    user = require(request, "administer")
    station = admin.station_create(site=body.site, line=body.line, name=body.name, task=body.task, takt_s=body.takt_s,
                                   actor=user.username, source=source(request))
    return {"ok": True, "detail": f"station {station.name} created"}


@router.patch("/stations/{station}", response=DoneOut)
def update_station(request: HttpRequest, station: str, body: StationPatch) -> Any:
    user = require(request, "administer")
    updated = admin.station_update(name=station, actor=user.username, source=source(request), new_name=body.name, task=body.task,
                                   takt_s=body.takt_s, site=body.site, line=body.line)
    return {"ok": True, "detail": f"station {updated.name} saved"}


@router.post("/stations/{station}/retire", response=DoneOut)
def retire_station(request: HttpRequest, station: str) -> Any:
    user = require(request, "administer")
    admin.station_retire(name=station, actor=user.username, source=source(request))
    return {"ok": True, "detail": f"station {station} retired"}


@router.post("/robots", response=TokenOut)
def create_robot(request: HttpRequest, body: RobotIn) -> Any:
    user = require(request, "administer")
    robot, token = admin.robot_create(name=body.name, station=body.station, actor=user.username, source=source(request))
    place = f" on {body.station}" if body.station else " on no station"
    return {"robot": robot.name, "token": token, "prefix": token[:8], "detail": f"{robot.name} created{place}: give its agent the token below"}


@router.patch("/robots/{robot}", response=DoneOut)
def assign_robot(request: HttpRequest, robot: str, body: RobotPatch) -> Any:
    user = require(request, "administer")
    admin.robot_assign(name=robot, station=body.station, actor=user.username, source=source(request))
    return {"ok": True, "detail": f"{robot} is on {body.station}" if body.station else f"{robot} is on no station"}


@router.post("/robots/{robot}/token", response=TokenOut)
def rotate_token(request: HttpRequest, robot: str) -> Any:
    user = require(request, "administer")
    token = admin.robot_rotate_token(name=robot, actor=user.username, source=source(request))
    return {"robot": robot, "token": token, "prefix": token[:8], "detail": f"{robot}: a new token; the old one no longer connects"}


@router.delete("/robots/{robot}/token", response=DoneOut)
def revoke_token(request: HttpRequest, robot: str) -> Any:
    user = require(request, "administer")
    admin.robot_revoke_token(name=robot, actor=user.username, source=source(request))
    return {"ok": True, "detail": f"{robot}'s token revoked: it cannot connect until a new one is issued"}


@router.post("/robots/{robot}/retire", response=DoneOut)
def retire_robot(request: HttpRequest, robot: str) -> Any:
    user = require(request, "administer")
    admin.robot_retire(name=robot, actor=user.username, source=source(request))
    return {"ok": True, "detail": f"{robot} retired"}
