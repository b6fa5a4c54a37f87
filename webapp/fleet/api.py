"""HTTP JSON API (django-ninja): /api/... with its OpenAPI schema at /api/openapi.json.

django-ninja rather than DRF: its request/response schemas are pydantic models, the same
library that validates the realtime protocol, so one style of schema covers both, and the
OpenAPI document comes from the type hints with no extra package.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from django.conf import settings
from django.db import transaction
from django.http import FileResponse, HttpRequest
from django.utils import timezone
from ninja import File, Form, NinjaAPI, Router, Schema
from ninja.errors import HttpError
from ninja.files import UploadedFile
from ninja.responses import Status
from ninja.security import APIKeyCookie, HttpBearer

from webapp.fleet.models import ApiToken, AuditEvent, Episode, EpisodeUpload, Intervention, PolicyVersion, Robot, Station
from webapp.fleet.paging import Offset
from webapp.fleet.roles import user_can, user_capabilities, user_roles
from webapp.fleet.selectors import fleet_robots, intervention_dict, interventions_query, iso, lease_dict, robot_status_by_name
from webapp.fleet.services import custody, interventions
from webapp.fleet.services.errors import ServiceError
from webapp.fleet.services.robots import robot_authenticate
from webapp.fleet.tokens import USER_TOKEN_PREFIX, hash_token


class UserBearer(HttpBearer):
    """Personal API tokens (`python manage.py api_token USER`)."""

    def authenticate(self, request: HttpRequest, token: str) -> Any:
        if not token.startswith(USER_TOKEN_PREFIX):
            return None
        record = ApiToken.objects.select_related("user").filter(token_hash=hash_token(token), revoked_at__isnull=True).first()
        if record is None or not record.user.is_active:
            return None
        ApiToken.objects.filter(pk=record.pk).update(last_used_at=timezone.now())
        request.user = record.user
        return record.user


class UserSession(APIKeyCookie):
    """The browser's Django session (CSRF-checked on unsafe methods)."""

    param_name = settings.SESSION_COOKIE_NAME

    def authenticate(self, request: HttpRequest, key: str | None) -> Any:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return user
        return None


class RobotBearer(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> Any:
        robot = robot_authenticate(token)
        if robot is not None:
            request.robot = robot  # type: ignore[attr-defined]
        return robot


user_auth = [UserBearer(), UserSession(csrf=True)]
class ForemanAPI(NinjaAPI):
    """The API, whose OpenAPI schema also documents the errors every operation can answer with."""

    def get_openapi_schema(self, *, path_prefix: str | None = None, path_params: dict[str, Any] | None = None) -> Any:
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        document_errors(schema)
        return schema


ERROR_SCHEMA = {
    "title": "Error", "type": "object", "required": ["detail"], "additionalProperties": True,
    "description": "Every error: `detail` says what went wrong (a list of field errors for invalid input); "
                   "`code` names the service error (held_by_other, estopped, …) with its own extra fields.",
    "properties": {"detail": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]},
                   "code": {"type": "string"}},
}
ERROR_RESPONSES = {
    "400": "the request body cannot be parsed (not JSON, or not the declared form)",
    "401": "missing or invalid credentials (a personal or session login; robot endpoints: a robot token)",
    "403": "the role may not do this",
    "404": "no such object (named in the path or the body)",
    "409": "refused in the robot's current state (held by someone else, e-stopped, not held, …)",
    "422": "invalid input: the body, query or path does not fit the operation",
}


def document_errors(schema: dict[str, Any]) -> None:
    """Add the shared Error schema and the error statuses each operation can return (what schemathesis
    checks the API against): 401/403 where credentials are needed, 400 where a body is parsed, 404
    where the path or body names an object, 409 on state-changing calls, 422 everywhere (validation)."""
    schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    reference = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            codes = ["422"]
            if operation.get("security"):
                codes += ["401", "403"]
            if "requestBody" in operation:
                codes.append("400")
            if "{" in path or "requestBody" in operation:
                codes.append("404")
            if method in ("post", "put", "patch", "delete"):
                codes.append("409")
            for code in codes:
                if code not in responses and int(code) not in responses:
                    responses[code] = {"description": ERROR_RESPONSES[code], **reference}


api = ForemanAPI(title="Foreman API", version="1", auth=user_auth, urls_namespace="api")


@api.exception_handler(ServiceError)
def service_error(request: HttpRequest, error: ServiceError) -> Any:
    return api.create_response(request, {"code": error.code, "detail": error.message, **error.data}, status=error.http_status)


def require(request: HttpRequest, capability: str) -> Any:
    user = request.auth  # type: ignore[attr-defined]
    if not user_can(user, capability):  # type: ignore[arg-type]
        raise HttpError(403, f"your role may not do this ({capability})")
    return user


def source(request: HttpRequest) -> str:
    return f"http {request.META.get('REMOTE_ADDR', '?')}"


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


class InterventionOut(Schema):
    id: str
    robot: str
    trigger: str
    severity: str
    state: str
    detail: str
    raised_at: str
    acknowledged_at: str | None
    acknowledged_by: str | None
    claimed_at: str | None
    claimed_by: str | None
    resolved_at: str | None
    resolved_by: str | None
    resolution: str | None
    episode: str | None


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


class UploadOut(Schema):
    episode: str
    upload: str
    state: str


# ---------------------------------------------------------------- user endpoints


@api.get("/me", response=MeOut, tags=["users"])
def me(request: HttpRequest) -> dict[str, Any]:
    user = request.auth  # type: ignore[attr-defined]
    return {"username": user.username, "roles": user_roles(user), "can": sorted(user_capabilities(user))}


@api.get("/robots", response=list[RobotOut], tags=["robots"])
def list_robots(request: HttpRequest) -> list[dict[str, Any]]:
    require(request, "view")
    return fleet_robots()


@api.get("/robots/{name}", response={200: RobotOut, 404: ErrorOut}, tags=["robots"])
def get_robot(request: HttpRequest, name: str) -> Any:
    require(request, "view")
    status = robot_status_by_name(name)
    if status is None:
        return Status(404, {"detail": f"no robot named {name!r}"})
    return status


@api.post("/robots/{name}/claim", response={200: LeaseOut}, tags=["control"])
def claim(request: HttpRequest, name: str, body: ClaimIn) -> Any:
    user = require(request, "control")
    lease = custody.robot_claim_control(robot_name=name, user=user, mode=body.mode, takeover=body.takeover, source=source(request))
    return lease_dict(lease)


@api.post("/robots/{name}/heartbeat", response={200: LeaseOut}, tags=["control"])
def heartbeat(request: HttpRequest, name: str, body: LeaseIn) -> Any:
    user = require(request, "control")
    return lease_dict(custody.lease_heartbeat(robot_name=name, lease_id=body.lease_id, user=user, source=source(request)))


@api.post("/robots/{name}/release", response=OkOut, tags=["control"])
def release(request: HttpRequest, name: str, body: LeaseIn) -> Any:
    user = require(request, "control")
    custody.lease_release(robot_name=name, lease_id=body.lease_id, user=user, source=source(request))
    return {"ok": True, "detail": "handed back to the policy"}


@api.post("/robots/{name}/estop", response=OkOut, tags=["control"])
def estop(request: HttpRequest, name: str, body: EstopIn) -> Any:
    user = require(request, "estop")
    custody.robot_estop(robot_name=name, actor=user, reason=body.reason, source=source(request))
    return {"ok": True, "detail": "e-stop latched"}


@api.post("/robots/{name}/clear_estop", response=OkOut, tags=["control"])
def clear_estop(request: HttpRequest, name: str) -> Any:
    user = require(request, "clear_estop")
    custody.robot_clear_estop(robot_name=name, user=user, source=source(request))
    return {"ok": True, "detail": "e-stop cleared; the robot holds until resumed or claimed"}


@api.post("/robots/{name}/pause", response=OkOut, tags=["control"])
def pause(request: HttpRequest, name: str) -> Any:
    user = require(request, "estop")
    custody.robot_command(robot_name=name, user=user, command="pause", source=source(request))
    return {"ok": True, "detail": "pause sent"}


@api.post("/robots/{name}/resume", response=OkOut, tags=["control"])
def resume(request: HttpRequest, name: str) -> Any:
    user = require(request, "estop")
    custody.robot_command(robot_name=name, user=user, command="resume", source=source(request))
    return {"ok": True, "detail": "resume sent"}


@api.get("/stations", response=list[StationOut], tags=["robots"])
def list_stations(request: HttpRequest) -> list[dict[str, Any]]:
    require(request, "view")
    stations = Station.objects.select_related("line__site").prefetch_related("robots").order_by("name")
    return [
        {"name": s.name, "line": s.line.name, "site": s.line.site.name, "task": s.task, "takt_s": s.takt_s,
         "robots": sorted(r.name for r in s.robots.all())}
        for s in stations
    ]


def _page(limit: int, offset: int) -> slice:
    limit = max(1, min(limit, 500))
    return slice(offset, offset + limit)  # offset is validated (Offset: 0…1e9)


@api.get("/interventions", response=list[InterventionOut], tags=["interventions"])
def list_interventions(request: HttpRequest, state: str | None = None, robot: str | None = None, open: bool = False, limit: int = 100, offset: Offset = 0) -> Any:
    if not (user_can(request.auth, "view") or user_can(request.auth, "episodes")):  # type: ignore[attr-defined]
        raise HttpError(403, "your role may not read interventions")
    items = interventions_query()
    if state:
        items = items.filter(state=state)
    if open:
        items = items.exclude(state=Intervention.State.RESOLVED)
    if robot:
        items = items.filter(robot__name=robot)
    return [intervention_dict(i) for i in items.order_by("-raised_at")[_page(limit, offset)]]


@api.post("/interventions/{intervention_id}/ack", response=InterventionOut, tags=["interventions"])
def ack_intervention(request: HttpRequest, intervention_id: uuid.UUID) -> Any:
    user = require(request, "ack")
    item = interventions.intervention_acknowledge(intervention_id=str(intervention_id), user=user, source=source(request))
    return intervention_dict(interventions_query().get(pk=item.pk))


def episode_dict(e: Episode) -> dict[str, Any]:
    return {
        "id": str(e.id), "robot": e.robot.name, "station": e.station.name if e.station else None,
        "policy_version": e.policy_version, "cycle_index": e.cycle_index, "seed": e.seed,
        "started_at": iso(e.started_at), "ended_at": iso(e.ended_at), "duration_s": e.duration_s,
        "outcome": e.outcome, "failure_mode": e.failure_mode, "intervened": e.intervened,
        "uploaded": hasattr(e, "upload"),
    }


@api.get("/episodes", response=list[EpisodeOut], tags=["episodes"])
def list_episodes(request: HttpRequest, robot: str | None = None, outcome: str | None = None, limit: int = 100, offset: Offset = 0) -> Any:
    require(request, "episodes")
    items = Episode.objects.select_related("robot", "station", "upload")
    if robot:
        items = items.filter(robot__name=robot)
    if outcome:
        items = items.filter(outcome=outcome)
    return [episode_dict(e) for e in items.order_by("-started_at")[_page(limit, offset)]]


@api.get("/audit", response=list[AuditOut], tags=["audit"])
def list_audit(request: HttpRequest, robot: str | None = None, actor: str | None = None, action: str | None = None, limit: int = 100, offset: Offset = 0) -> Any:
    require(request, "audit")
    items = AuditEvent.objects.select_related("robot")
    if robot:
        items = items.filter(robot__name=robot)
    if actor:
        items = items.filter(actor=actor)
    if action:
        items = items.filter(action=action)
    return [
        {"id": a.id, "at": iso(a.at), "actor": a.actor, "action": a.action, "robot": a.robot.name if a.robot else None,
         "source": a.source, "detail": a.detail}
        for a in items.order_by("-at", "-id")[_page(limit, offset)]
    ]


# ---------------------------------------------------------------- robot endpoints (robot token only)

robot_router = Router(auth=RobotBearer(), tags=["robot"])
SAFE_CAMERA = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


class UploadMetadata(Schema):
    episode: uuid.UUID
    cycle_index: int = 0
    policy_version: str = ""
    seed: int | None = None
    started_at: datetime
    duration_s: float
    outcome: Literal["success", "failure", "aborted"]
    failure_mode: str | None = None
    intervened: bool = False
    fps: float
    cameras: list[str]
    steps: int


@robot_router.post("/episodes/{episode_id}/upload", response={200: UploadOut, 400: ErrorOut, 413: ErrorOut}, url_name="robot_upload")
def upload_episode(
    request: HttpRequest,
    episode_id: uuid.UUID,
    metadata: Form[str],
    steps: File[UploadedFile],
) -> Any:
    robot: Robot = request.auth  # type: ignore[attr-defined]
    limit = settings.FOREMAN_MAX_UPLOAD_MB * 1024 * 1024
    files = {"steps": steps, **{k: v for k, v in request.FILES.items() if k.startswith("video_")}}
    total = sum(f.size or 0 for f in files.values())
    if total > limit:
        return Status(413, {"detail": f"upload is {total} bytes; the limit is {limit}"})
    try:
        meta = UploadMetadata.model_validate(json.loads(metadata))
    except (ValueError, TypeError) as error:
        return Status(400, {"detail": f"metadata is not valid: {str(error)[:300]}"})
    if meta.episode != episode_id:
        return Status(400, {"detail": "metadata.episode does not match the URL"})
    for camera in meta.cameras:
        if not SAFE_CAMERA.match(camera):
            return Status(400, {"detail": f"bad camera name {camera!r}"})
        if f"video_{camera}" not in files:
            return Status(400, {"detail": f"missing video_{camera}"})
    extra = {k for k in files if k.startswith("video_")} - {f"video_{c}" for c in meta.cameras}
    if extra:
        return Status(400, {"detail": f"videos for undeclared cameras: {sorted(extra)}"})
    existing = EpisodeUpload.objects.filter(episode_id=episode_id).first()
    if existing is not None:
        if existing.episode.robot_id != robot.pk:
            return Status(400, {"detail": "episode belongs to another robot"})
        return {"episode": str(episode_id), "upload": str(existing.id), "state": "duplicate"}
    directory = Path(settings.MEDIA_ROOT) / "uploads" / robot.name / str(episode_id)
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    stored: dict[str, str] = {}
    for key, upload in files.items():
        # Names are ours, never the client's: no path from the request reaches the disk.
        name = "steps.parquet" if key == "steps" else f"{key[len('video_'):]}.mp4"
        with open(partial / name, "wb") as out:
            for chunk in upload.chunks():
                out.write(chunk)
        stored[key] = name
    (partial / "metadata.json").write_text(metadata)
    with transaction.atomic():
        episode = Episode.objects.filter(pk=episode_id).first()
        if episode is not None and episode.robot_id != robot.pk:
            shutil.rmtree(partial, ignore_errors=True)
            return Status(400, {"detail": "episode belongs to another robot"})
        if episode is None:
            # Recorded while the server was away: the upload is the only record of the cycle.
            episode = Episode.objects.create(
                id=episode_id, robot=robot, station=robot.station, policy_version=meta.policy_version,
                cycle_index=meta.cycle_index, seed=meta.seed, started_at=meta.started_at,
            )
        if episode.outcome == Episode.Outcome.RUNNING:
            episode.outcome = meta.outcome
            episode.failure_mode = meta.failure_mode or ""
            episode.duration_s = meta.duration_s
            episode.ended_at = episode.started_at + timedelta(seconds=meta.duration_s)
        episode.intervened = episode.intervened or meta.intervened
        episode.save()
        shutil.rmtree(directory, ignore_errors=True)
        partial.rename(directory)
        record = EpisodeUpload.objects.create(
            episode=episode, directory=str(directory.relative_to(settings.MEDIA_ROOT)), files=stored,
            metadata=json.loads(metadata),
        )
        transaction.on_commit(lambda: _queue_processing(str(record.id)))
    return {"episode": str(episode_id), "upload": str(record.id), "state": record.state}


def _queue_processing(upload_id: str) -> None:
    from webapp.labeling.tasks import process_upload

    try:
        process_upload.delay(upload_id)
    except Exception:  # noqa: BLE001 - the upload is stored; `manage.py process_uploads` catches up
        import logging

        logging.getLogger(__name__).exception("could not queue processing of upload %s", upload_id)


@robot_router.get("/policies/{version}", response={200: None, 404: ErrorOut}, url_name="robot_policy")
def download_policy(request: HttpRequest, version: str) -> Any:
    """The checkpoint of a rolled-out policy; the agent checks it against the rollout's sha256."""
    policy = PolicyVersion.objects.filter(name=version).exclude(checkpoint="").first()
    if policy is None:
        return Status(404, {"detail": f"no checkpoint for policy {version!r}"})
    root = Path(settings.MEDIA_ROOT).resolve()
    path = (root / policy.checkpoint).resolve()
    if root not in path.parents or not path.is_file():
        return Status(404, {"detail": f"the checkpoint of {version!r} is missing on the server"})
    response = FileResponse(open(path, "rb"), content_type="application/octet-stream", as_attachment=True, filename=path.name)
    response["X-Checkpoint-SHA256"] = policy.sha256
    return response


api.add_router("/robot", robot_router)

# The dashboard's, the labeling loop's and the learning loop's own endpoints live with their apps.
from webapp.dashboard.api import router as dashboard_router  # noqa: E402
from webapp.labeling.api import router as labeling_router  # noqa: E402
from webapp.learning.api import router as learning_router  # noqa: E402

api.add_router("/dashboard", dashboard_router)
api.add_router("/labeling", labeling_router)
api.add_router("/learning", learning_router)
