"""Robot-facing HTTP endpoints, /api/robot/...: a robot token (RobotBearer), never a user's login.

Robots talk to the server over the WebSocket (consumers.py); over HTTP they only upload recorded
episodes and download rolled-out policy checkpoints.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from django.http import FileResponse, HttpRequest
from ninja import File, Form, Router, Schema
from ninja.files import UploadedFile
from ninja.responses import Status

from webapp.fleet.api import ErrorOut
from webapp.fleet.api_auth import RobotBearer
from webapp.fleet.models import Robot
from webapp.labeling.services.uploads import UploadRefused, upload_store
from webapp.learning.selectors import policy_checkpoint


class UploadOut(Schema):
    episode: str
    upload: str
    state: str


router = Router(auth=RobotBearer(), tags=["robot"])
# The operationIds these had before the robot endpoints left fleet/api.py, so generated clients keep them.
OPERATION_ID_PREFIX = "webapp_fleet_api_"
SAFE_CAMERA = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


@router.post("/episodes/{episode_id}/upload", response={200: UploadOut, 400: ErrorOut, 413: ErrorOut}, url_name="robot_upload",
             operation_id=OPERATION_ID_PREFIX + "upload_episode")
def upload_episode(
    request: HttpRequest,
    episode_id: uuid.UUID,
    metadata: Form[str],
    steps: File[UploadedFile],
) -> Any:
    robot: Robot = request.auth
    files = {"steps": steps, **{k: v for k, v in request.FILES.items() if k.startswith("video_")}}
    try:
        stored = upload_store(robot=robot, episode_id=episode_id, metadata=metadata, files=files)
    except UploadRefused as refused:
        return Status(refused.http_status, {"detail": refused.message})
    return {"episode": stored.episode, "upload": stored.upload, "state": stored.state}


@router.get("/policies/{version}", response={200: None, 404: ErrorOut}, url_name="robot_policy",
            operation_id=OPERATION_ID_PREFIX + "download_policy")
def download_policy(request: HttpRequest, version: str) -> Any:
    """The checkpoint of a rolled-out policy; the agent checks it against the rollout's sha256."""
    checkpoint = policy_checkpoint(version)  # NotFound: 404
    response = FileResponse(open(checkpoint.path, "rb"), content_type="application/octet-stream", as_attachment=True,
                            filename=checkpoint.path.name)
    response["X-Checkpoint-SHA256"] = checkpoint.sha256
    return response
