"""The HTTP API: a permission matrix over every operation in /api/openapi.json × role × robot token ×
anonymous, plus the behaviour of the endpoints people and robots use."""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from django.test import Client

from webapp.fleet.models import AuditEvent, ControlSession, Episode, PolicyVersion, Robot
from webapp.fleet.services.users import api_token_issue

pytestmark = pytest.mark.django_db

ROLES = ("supervisor", "operator", "labeler", "admin")

# Every operation and the capability it needs ("robot" = robot token only, None = any signed-in user).
# A new endpoint without an entry here fails test_every_operation_is_in_the_matrix.
REQUIRED: dict[tuple[str, str], str | None] = {
    ("get", "/api/me"): None,
    ("get", "/api/robots"): "view",
    ("get", "/api/robots/{name}"): "view",
    ("get", "/api/robots/{name}/features"): "view",
    ("post", "/api/robots/{name}/claim"): "control",
    ("post", "/api/robots/{name}/heartbeat"): "control",
    ("post", "/api/robots/{name}/release"): "control",
    ("post", "/api/robots/{name}/estop"): "estop",
    ("post", "/api/robots/{name}/clear_estop"): "clear_estop",
    ("post", "/api/robots/{name}/pause"): "estop",
    ("post", "/api/robots/{name}/resume"): "estop",
    ("get", "/api/stations"): "view",
    ("get", "/api/interventions"): "view|episodes",  # labelers read what they label
    ("post", "/api/interventions/{intervention_id}/ack"): "ack",
    ("get", "/api/episodes"): "episodes",
    ("get", "/api/audit"): "audit",
    ("post", "/api/robot/episodes/{episode_id}/upload"): "robot",
    ("get", "/api/robot/policies/{version}"): "robot",
    # Fleet administration: paths name their object by {site}, {line}, {station}, {robot}, which the
    # matrix fills with names that do not exist (an admin gets 404, never a change to the fixture).
    ("get", "/api/fleet/layout"): "administer",
    ("post", "/api/fleet/sites"): "administer",
    ("patch", "/api/fleet/sites/{site}"): "administer",
    ("post", "/api/fleet/sites/{site}/retire"): "administer",
    ("post", "/api/fleet/sites/{site}/lines"): "administer",
    ("patch", "/api/fleet/sites/{site}/lines/{line}"): "administer",
    ("post", "/api/fleet/sites/{site}/lines/{line}/retire"): "administer",
    ("post", "/api/fleet/stations"): "administer",
    ("patch", "/api/fleet/stations/{station}"): "administer",
    ("post", "/api/fleet/stations/{station}/retire"): "administer",
    ("post", "/api/fleet/robots"): "administer",
    ("patch", "/api/fleet/robots/{robot}"): "administer",
    ("post", "/api/fleet/robots/{robot}/token"): "administer",
    ("delete", "/api/fleet/robots/{robot}/token"): "administer",
    ("post", "/api/fleet/robots/{robot}/retire"): "administer",
}
# The dashboard's and labeling's tables live beside their tests (tests/<app>/api_permissions.py).
for _module in ("tests.dashboard.api_permissions", "tests.labeling.api_permissions", "tests.learning.api_permissions"):
    try:
        REQUIRED.update(importlib.import_module(_module).REQUIRED)
    except ModuleNotFoundError as error:
        if error.name is None or not _module.startswith(error.name):
            raise

CAPS = {
    "supervisor": {"view", "ack", "estop", "clear_estop", "episodes", "audit", "rollout"},
    "operator": {"view", "ack", "estop", "control", "episodes"},
    "labeler": {"episodes", "label"},
    "admin": {"view", "ack", "estop", "clear_estop", "control", "takeover", "episodes", "label", "audit", "rollout", "administer"},
}


def operations(client: Client) -> list[tuple[str, str]]:
    schema = client.get("/api/openapi.json").json()
    return [(method, path) for path, item in schema["paths"].items() for method in item if method in {"get", "post", "put", "patch", "delete"}]


def fill(path: str) -> str:
    path = path.replace("{name}", "r1").replace("{version}", "bc-sim-v1")
    return re.sub(r"\{\w+\}", lambda _: str(uuid.uuid4()), path)  # any other id: a fresh UUID


def call(client: Client, method: str, path: str, token: str | None) -> int:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    body: dict[str, Any] = {}
    if path.endswith("/heartbeat") or path.endswith("/release"):
        body = {"lease_id": str(uuid.uuid4())}
    if path.endswith("/rollout"):
        body = {"robot": "r1"}
    if path.endswith("/review"):
        body = {"verdict": "confirm"}
    if path.endswith("/exports"):
        body = {"format": "lerobot_v3"}
    if path.endswith("/retraining"):
        body = {"export": str(uuid.uuid4())}
    if path.endswith(("/api/fleet/sites", "/lines", "/api/fleet/sites/{site}", "/lines/{line}")):
        body = {"name": f"matrix-{uuid.uuid4().hex[:8]}"}
    if path == "/api/fleet/stations":
        body = {"site": "no-such-site", "line": "no-such-line", "name": "matrix", "task": "matrix", "takt_s": 10}
    if path == "/api/fleet/robots":
        body = {"name": f"matrix-{uuid.uuid4().hex[:8]}"}
    if path == "/api/fleet/robots/{robot}":
        body = {"station": None}
    if method == "get":
        return client.get(fill(path), **headers).status_code
    if method in ("patch", "delete"):
        return getattr(client, method)(fill(path), json.dumps(body), content_type="application/json", **headers).status_code
    if "/upload" in path:
        return client.post(fill(path), {"metadata": "{}", "steps": io.BytesIO(b"x")}, **headers).status_code
    return client.post(fill(path), json.dumps(body), content_type="application/json", **headers).status_code


def test_openapi_schema_is_served_and_every_operation_is_in_the_matrix(fleet):
    client = Client()
    response = client.get("/api/openapi.json")
    assert response.status_code == 200 and response.json()["info"]["title"] == "Foreman API"
    assert set(operations(client)) == set(REQUIRED)


def test_permission_matrix(fleet, users):
    client = Client()
    tokens = {role: api_token_issue(user=users[role]) for role in ROLES}
    robot_token = fleet.tokens["r1"]
    checked = 0
    for method, path in operations(client):
        need = REQUIRED[(method, path)]
        # Anonymous and garbage tokens: 401 everywhere.
        assert call(client, method, path, None) == 401, (method, path, "anonymous")
        assert call(client, method, path, "fut_forged") == 401, (method, path, "forged")
        robot_status = call(client, method, path, robot_token)
        if need == "robot":
            assert robot_status not in {401, 403}, (method, path, "robot", robot_status)
        else:
            assert robot_status == 401, (method, path, "robot token on a user endpoint")
        for role in ROLES:
            status = call(client, method, path, tokens[role])
            if need == "robot":
                assert status == 401, (method, path, role, "user token on a robot endpoint")
            elif need is None or set(need.split("|")) & CAPS[role]:
                assert status not in {401, 403}, (method, path, role, status)
            else:
                assert status == 403, (method, path, role, status)
            checked += 1
    assert checked == len(REQUIRED) * len(ROLES)


def test_session_auth_needs_csrf_on_unsafe_methods(fleet, users):
    client = Client(enforce_csrf_checks=True)
    client.force_login(users["supervisor"])
    assert client.get("/api/robots").status_code == 200
    assert client.post("/api/robots/r1/estop", "{}", content_type="application/json").status_code == 403
    client.get("/")  # the page sets the CSRF cookie
    csrf = client.cookies["csrftoken"].value
    response = client.post("/api/robots/r1/estop", "{}", content_type="application/json", HTTP_X_CSRFTOKEN=csrf)
    assert response.status_code == 200
    assert Robot.objects.get(name="r1").estopped


def test_claim_over_http_conflict_names_holder_and_audit_lists_it(fleet, users):
    Robot.objects.filter(name="r1").update(online=True)
    client = Client()
    operator = {"HTTP_AUTHORIZATION": f"Bearer {api_token_issue(user=users['operator'])}"}
    admin = {"HTTP_AUTHORIZATION": f"Bearer {api_token_issue(user=users['admin'])}"}
    granted = client.post("/api/robots/r1/claim", json.dumps({"mode": "teleop"}), content_type="application/json", **operator)
    assert granted.status_code == 200, granted.content
    lease = granted.json()
    refused = client.post("/api/robots/r1/claim", json.dumps({"mode": "teleop"}), content_type="application/json", **admin)
    assert refused.status_code == 409 and refused.json()["holder"] == "operator"
    renewed = client.post("/api/robots/r1/heartbeat", json.dumps({"lease_id": lease["id"]}), content_type="application/json", **operator)
    assert renewed.status_code == 200 and renewed.json()["id"] == lease["id"]
    released = client.post("/api/robots/r1/release", json.dumps({"lease_id": lease["id"]}), content_type="application/json", **operator)
    assert released.status_code == 200
    assert ControlSession.objects.get(pk=lease["id"]).end_reason == "released"
    audit = client.get("/api/audit?robot=r1", **admin).json()
    assert [a["action"] for a in audit][:2] == ["lease_ended", "lease_granted"]
    assert AuditEvent.objects.filter(robot__name="r1", actor="operator").exists()


def test_estop_over_http_ends_the_lease(fleet, users):
    """The robot page's fallback when its socket is down: the same e-stop, ending custody too."""
    Robot.objects.filter(name="r1").update(online=True)
    client = Client()
    operator = {"HTTP_AUTHORIZATION": f"Bearer {api_token_issue(user=users['operator'])}"}
    lease = client.post("/api/robots/r1/claim", json.dumps({"mode": "teleop"}), content_type="application/json", **operator).json()
    assert client.post("/api/robots/r1/estop", "{}", content_type="application/json", **operator).status_code == 200
    assert ControlSession.objects.get(pk=lease["id"]).end_reason == "estop"
    ended = AuditEvent.objects.get(robot__name="r1", action="lease_ended")
    assert ended.detail["reason"] == "estop" and ended.source.startswith("http")
    renewed = client.post("/api/robots/r1/heartbeat", json.dumps({"lease_id": lease["id"]}), content_type="application/json", **operator)
    assert renewed.status_code == 409 and renewed.json()["code"] == "stale_lease"


def test_robot_list_and_detail(fleet, users):
    client = Client()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {api_token_issue(user=users['supervisor'])}"}
    robots = client.get("/api/robots", **headers).json()
    assert [r["name"] for r in robots] == ["r1", "r2", "r3"]
    assert client.get("/api/robots/r1", **headers).json()["station"] == robots[0]["station"]
    assert client.get("/api/robots/nope", **headers).status_code == 404


def test_a_robots_declared_features_are_served_as_its_hello_gave_them(fleet, users):
    from foreman_protocol.messages import FeatureSpec, Hello, RobotFeatures
    from webapp.fleet.services.robots import robot_connected

    client = Client()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {api_token_issue(user=users['supervisor'])}"}
    none_yet = client.get("/api/robots/r1/features", **headers)
    assert none_yet.status_code == 404 and "declared no features" in none_yet.json()["detail"]
    features = RobotFeatures(control_hz=50.0, state=[FeatureSpec(name="joint_0", unit="rad")],
                             action=[FeatureSpec(name="joint_0", unit="rad", low=-3.14, high=3.14)])
    robot_connected(robot_name="r1", hello=Hello(protocol=1, agent_version="t", cameras=["top"], mode="paused", estopped=False,
                                                 features=features), channel="test-channel")
    served = client.get("/api/robots/r1/features", **headers)
    assert served.status_code == 200 and RobotFeatures.model_validate(served.json()) == features
    assert client.get("/api/robots/nope/features", **headers).status_code == 404


def test_hostile_query_strings_get_a_clear_error_not_a_server_error(fleet, users):
    """Found by schemathesis (tests/fuzz/test_api_schemathesis.py): each of these was a 500."""
    client = Client()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {api_token_issue(user=users['admin'])}"}
    for url in ("/api/episodes?robot=%00", "/api/labeling/queue?policy=a%00b", "/api/interventions?%00=1"):
        response = client.get(url, **headers)
        assert response.status_code == 422 and "NUL" in response.json()["detail"], url
    for url in ("/api/interventions?offset=2779053497307821077408000315016347648", "/api/labeling/queue?offset=-85",
                "/api/audit?offset=-1"):
        response = client.get(url, **headers)
        assert response.status_code == 422, url
    assert client.get("/api/audit?offset=5", **headers).status_code == 200
    odd_offset = client.get("/api/dashboard/kpis?start=0586-12-28T08:24:41.0589-18:44", **headers)
    assert odd_offset.status_code == 200 and odd_offset.json()["window"]["start"].startswith("0586-12-29T03:08:41")
    assert client.get("/api/dashboard/kpis?start=0001-01-01T00:00:00-10:00", **headers).status_code == 200
    assert client.get("/api/dashboard/kpis?start=9999-12-31T23:00:00-10:00", **headers).status_code == 422
    client.force_login(users["admin"])
    assert client.get("/audit/?robot=%00").status_code == 400


# ------------------------------------------------------------------ robot endpoints


def test_policy_download_serves_the_checkpoint_with_its_hash(fleet, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    blob = b"checkpoint bytes"
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "v2.pt").write_bytes(blob)
    PolicyVersion.objects.create(name="bc-sim-v2", checkpoint="policies/v2.pt", sha256=hashlib.sha256(blob).hexdigest())
    PolicyVersion.objects.create(name="escape", checkpoint="../../etc/passwd", sha256="0" * 64)
    client = Client()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {fleet.tokens['r1']}"}
    response = client.get("/api/robot/policies/bc-sim-v2", **headers)
    assert response.status_code == 200 and b"".join(response.streaming_content) == blob
    assert response["X-Checkpoint-SHA256"] == hashlib.sha256(blob).hexdigest()
    escape = client.get("/api/robot/policies/escape", **headers)
    assert escape.status_code == 404 and escape.json() == {"code": "not_found", "detail": "the checkpoint of 'escape' is missing on the server"}
    unknown = client.get("/api/robot/policies/unknown", **headers)
    assert unknown.status_code == 404 and unknown.json() == {"code": "not_found", "detail": "no checkpoint for policy 'unknown'"}


def upload_metadata(episode: uuid.UUID, **overrides: Any) -> str:
    meta = {"episode": str(episode), "cycle_index": 3, "policy_version": "bc-sim-v1", "seed": 7,
            "started_at": datetime.now(UTC).isoformat(), "duration_s": 61.0, "outcome": "failure",
            "failure_mode": "cross_threaded", "intervened": True, "fps": 30.0, "cameras": ["head"], "steps": 10}
    meta.update(overrides)
    return json.dumps(meta)


def upload(client: Client, token: str, episode: uuid.UUID, metadata: str, **files: bytes) -> Any:
    data: dict[str, Any] = {"metadata": metadata}
    data.update({name: io.BytesIO(content) for name, content in files.items()})
    return client.post(f"/api/robot/episodes/{episode}/upload", data, HTTP_AUTHORIZATION=f"Bearer {token}")


def test_upload_is_stored_once_and_bad_uploads_get_clear_reasons(fleet, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    client = Client()
    token = fleet.tokens["r1"]
    episode = uuid.uuid4()
    first = upload(client, token, episode, upload_metadata(episode), steps=b"PAR1", video_head=b"mp4")
    assert first.status_code == 200 and first.json()["state"] in {"received", "processing", "ready", "rejected"}
    again = upload(client, token, episode, upload_metadata(episode), steps=b"PAR1", video_head=b"mp4")
    assert again.json()["state"] == "duplicate"
    stored = Episode.objects.get(pk=episode)
    assert stored.robot.name == "r1" and stored.outcome == "failure" and stored.intervened
    assert sorted(p.name for p in (tmp_path / "uploads" / "r1" / str(episode)).iterdir()) == ["head.mp4", "metadata.json", "steps.parquet"]

    other = uuid.uuid4()
    cases = [
        (upload_metadata(uuid.uuid4()), {"steps": b"x", "video_head": b"x"}, "does not match"),
        ("{not json", {"steps": b"x", "video_head": b"x"}, "metadata"),
        (upload_metadata(other), {"steps": b"x"}, "missing video_head"),
        (upload_metadata(other), {"steps": b"x", "video_head": b"x", "video_extra": b"x"}, "undeclared"),
        (upload_metadata(other, cameras=["../../etc"]), {"steps": b"x", "video_head": b"x"}, "cameras.0"),
        (upload_metadata(other, outcome="maybe"), {"steps": b"x", "video_head": b"x"}, "metadata"),
    ]
    for metadata, files, reason in cases:
        response = upload(client, token, other, metadata, **files)
        assert response.status_code == 400 and reason in response.json()["detail"], (reason, response.content)
    assert not Episode.objects.filter(pk=other).exists()
    # Another robot cannot overwrite r1's episode.
    assert upload(client, fleet.tokens["r2"], episode, upload_metadata(episode), steps=b"x", video_head=b"x").status_code == 400


def test_oversized_upload_is_refused(fleet, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.FOREMAN_MAX_UPLOAD_MB = 1
    episode = uuid.uuid4()
    response = upload(Client(), fleet.tokens["r1"], episode, upload_metadata(episode), steps=b"x" * (1024 * 1024 + 1), video_head=b"x")
    assert response.status_code == 413 and "limit" in response.json()["detail"]
    assert not (tmp_path / "uploads").exists()
