"""The fleet's HTTP endpoints for people (mounted at /api/ by webapp/api.py): who am I, robots and
their control, stations, interventions, episodes, the audit log. Views are thin: a permission check,
then one service call (changes) or one selector (reads). Robots' own endpoints are robot_api.py.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from django.http import HttpRequest
from ninja import Router, Schema
from ninja.errors import HttpError
from ninja.responses import Status

from foreman_protocol.messages import InterventionInfo, RobotFeatures
from webapp.fleet import selectors
from webapp.fleet.api_auth import require, source
from webapp.fleet.paging import Offset
from webapp.fleet.roles import user_can, user_capabilities, user_roles
from webapp.fleet.services import custody, interventions

router = Router()


# ---------------------------------------------------------------- schemas


class LeaseOut(Schema):
    id: str
    holder: str
    mode: str
    expires_at: str
    ttl_s: float


class RobotOut(Schema):
    name: str
    station: str | None
    takt_s: float | None
    cameras: list[str]
    online: bool
    mode: str
    estopped: bool
    estopped_by: str | None
    policy_version: str | None
    lease: LeaseOut | None
    last_seen: str | None
    telemetry: dict[str, Any] | None = None


class StationOut(Schema):
    name: str
    line: str
    site: str
    task: str
    takt_s: float
    robots: list[str]


class EpisodeOut(Schema):
    id: str
    robot: str
    station: str | None
    policy_version: str
    cycle_index: int
    seed: int | None
    started_at: str
    ended_at: str | None
    duration_s: float | None
    outcome: str
    failure_mode: str
    intervened: bool
    uploaded: bool


class AuditOut(Schema):
    id: int
    at: str
    actor: str
    action: str
    robot: str | None
    source: str
    detail: dict[str, Any]


class MeOut(Schema):
    username: str
    roles: list[str]
    can: list[str]


class ClaimIn(Schema):
    mode: Literal["teleop", "shared"] = "teleop"
    takeover: bool = False


class LeaseIn(Schema):
    lease_id: str


class EstopIn(Schema):
    reason: str = ""


class OkOut(Schema):
    ok: bool
    detail: str = ""


class ErrorOut(Schema):
    detail: str


# ---------------------------------------------------------------- endpoints


@router.get("/me", response=MeOut, tags=["users"])
def me(request: HttpRequest) -> dict[str, Any]:
    user = request.auth
    return {"username": user.username, "roles": user_roles(user), "can": sorted(user_capabilities(user))}


@router.get("/robots", response=list[RobotOut], tags=["robots"])
def list_robots(request: HttpRequest) -> list[dict[str, Any]]:
    require(request, "view")
    return selectors.fleet_robots()


@router.get("/robots/{name}", response={200: RobotOut, 404: ErrorOut}, tags=["robots"])
def get_robot(request: HttpRequest, name: str) -> Any:
    require(request, "view")
    status = selectors.robot_status_by_name(name)
    if status is None:
        return Status(404, {"detail": f"no robot named {name!r}"})
    return status


@router.get("/robots/{name}/features", response={200: RobotFeatures, 404: ErrorOut}, tags=["robots"])
def get_robot_features(request: HttpRequest, name: str) -> Any:
    """The robot's control rate and its state and action features, as its agent declared them
    (docs/protocol.md, `hello.features`)."""
    require(request, "view")
    features = selectors.robot_features(name)
    if features is None:
        return Status(404, {"detail": f"no robot named {name!r}"})
    if not features:
        return Status(404, {"detail": f"{name} has declared no features: its agent's hello had none"})
    return features


@router.post("/robots/{name}/claim", response={200: LeaseOut}, tags=["control"])
def claim(request: HttpRequest, name: str, body: ClaimIn) -> Any:
    user = require(request, "control")
    lease = custody.robot_claim_control(robot_name=name, user=user, mode=body.mode, takeover=body.takeover, source=source(request))
    return selectors.lease_dict(lease)


@router.post("/robots/{name}/heartbeat", response={200: LeaseOut}, tags=["control"])
def heartbeat(request: HttpRequest, name: str, body: LeaseIn) -> Any:
    user = require(request, "control")
    return selectors.lease_dict(custody.lease_heartbeat(robot_name=name, lease_id=body.lease_id, user=user, source=source(request)))


@router.post("/robots/{name}/release", response=OkOut, tags=["control"])
def release(request: HttpRequest, name: str, body: LeaseIn) -> Any:
    user = require(request, "control")
    custody.lease_release(robot_name=name, lease_id=body.lease_id, user=user, source=source(request))
    return {"ok": True, "detail": "handed back to the policy"}


@router.post("/robots/{name}/estop", response=OkOut, tags=["control"])
def estop(request: HttpRequest, name: str, body: EstopIn) -> Any:
    user = require(request, "estop")
    custody.robot_estop(robot_name=name, actor=user, reason=body.reason, source=source(request))
    return {"ok": True, "detail": "e-stop latched"}


@router.post("/robots/{name}/clear_estop", response=OkOut, tags=["control"])
def clear_estop(request: HttpRequest, name: str) -> Any:
    user = require(request, "clear_estop")
    custody.robot_clear_estop(robot_name=name, user=user, source=source(request))
    return {"ok": True, "detail": "e-stop cleared; the robot holds until resumed or claimed"}


@router.post("/robots/{name}/pause", response=OkOut, tags=["control"])
def pause(request: HttpRequest, name: str) -> Any:
    user = require(request, "estop")
    custody.robot_command(robot_name=name, user=user, command="pause", source=source(request))
    return {"ok": True, "detail": "pause sent"}


@router.post("/robots/{name}/resume", response=OkOut, tags=["control"])
def resume(request: HttpRequest, name: str) -> Any:
    user = require(request, "estop")
    custody.robot_command(robot_name=name, user=user, command="resume", source=source(request))
    return {"ok": True, "detail": "resume sent"}


@router.get("/stations", response=list[StationOut], tags=["robots"])
def list_stations(request: HttpRequest) -> list[dict[str, Any]]:
    require(request, "view")
    return selectors.stations_list()


@router.get("/interventions", response=list[InterventionInfo], tags=["interventions"])
def list_interventions(
    request: HttpRequest, state: str | None = None, robot: str | None = None, open: bool = False, limit: int = 100, offset: Offset = 0
) -> Any:
    # Labelers read interventions too (the episodes they label), without the fleet's "view".
    if not (user_can(request.auth, "view") or user_can(request.auth, "episodes")):
        raise HttpError(403, "your role may not read interventions")
    return selectors.interventions_list(state=state, robot=robot, open_only=open, limit=limit, offset=offset)


@router.post("/interventions/{intervention_id}/ack", response=InterventionInfo, tags=["interventions"])
def ack_intervention(request: HttpRequest, intervention_id: uuid.UUID) -> Any:
    user = require(request, "ack")
    item = interventions.intervention_acknowledge(intervention_id=str(intervention_id), user=user, source=source(request))
    return selectors.intervention_by_id(item.pk)


@router.get("/episodes", response=list[EpisodeOut], tags=["episodes"])
def list_episodes(request: HttpRequest, robot: str | None = None, outcome: str | None = None, limit: int = 100, offset: Offset = 0) -> Any:
    require(request, "episodes")
    return selectors.episodes_list(robot=robot, outcome=outcome, limit=limit, offset=offset)


@router.get("/audit", response=list[AuditOut], tags=["audit"])
def list_audit(
    request: HttpRequest, robot: str | None = None, actor: str | None = None, action: str | None = None, limit: int = 100, offset: Offset = 0
) -> Any:
    require(request, "audit")
    return selectors.audit_list(robot=robot, actor=actor, action=action, limit=limit, offset=offset)
