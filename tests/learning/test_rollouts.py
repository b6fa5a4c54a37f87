"""Policy rollout through the real server to real agents: canary first, promote, one-click rollback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from tests.agent.station import ConfidencePolicy, KinematicStation, make_agent, stop_agent
from tests.conftest import wait_for_servers_to_settle
from tests.servers import eventually_async
from webapp.fleet.models import AuditEvent, Robot
from webapp.fleet.services.errors import Conflict, RobotOffline
from webapp.learning.models import Rollout, RolloutTarget
from webapp.learning.services.policies import policy_register
from webapp.learning.services.rollouts import rollout_promote, rollout_rollback, rollout_start

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def server_settles_before_flush(transactional_db: Any) -> Iterator[None]:
    yield
    wait_for_servers_to_settle()


def load_json_policy(path: str) -> ConfidencePolicy:
    spec = json.loads(Path(path).read_text())
    return ConfidencePolicy(confidences=(spec["confidence"],), version=spec["version"])


def checkpoint(tmp_path: Path, version: str) -> Path:
    path = tmp_path / f"{version}.json"
    path.write_text(json.dumps({"version": version, "confidence": 0.9}))
    return path


async def start_agent(url: str, token: str, state_dir: Path) -> tuple[Any, asyncio.Task[None]]:
    agent = make_agent(url, token, state_dir, KinematicStation(cycle_steps=15), ConfidencePolicy())
    agent.load_policy = load_json_policy
    return agent, asyncio.create_task(agent.run())


async def target_states(robot: str) -> list[tuple[str, str, str]]:
    rows = RolloutTarget.objects.filter(robot__name=robot).order_by("sent_at").values_list("purpose", "policy_version", "state")
    return await database_sync_to_async(lambda: list(rows))()


async def robot_version(name: str) -> str:
    return await database_sync_to_async(lambda: Robot.objects.get(name=name).policy_version)()


async def test_canary_then_fleet_then_rollback(fleet, users, daphne, daphne_env, tmp_path, settings):
    settings.MEDIA_ROOT = daphne_env["FOREMAN_MEDIA_ROOT"]  # the server serves the checkpoints we register
    register = database_sync_to_async(policy_register)
    await register(name="test-policy-v1", checkpoint=checkpoint(tmp_path, "test-policy-v1"))
    await register(name="test-policy-v2", checkpoint=checkpoint(tmp_path, "test-policy-v2"), parent="test-policy-v1",
                   evaluation={"success_rate": 0.97})
    r1, task1 = await start_agent(daphne.url, fleet.tokens["r1"], tmp_path / "r1")
    r2, task2 = await start_agent(daphne.url, fleet.tokens["r2"], tmp_path / "r2")
    try:
        async def online(*names: str) -> bool:
            return await database_sync_to_async(lambda: Robot.objects.filter(name__in=names, online=True).count() == len(names))()

        await eventually_async(lambda: online("r1", "r2"), what="both robots online")
        supervisor = users["supervisor"]

        # r3 never connected: it cannot be a canary.
        with pytest.raises(RobotOffline):
            await database_sync_to_async(rollout_start)(policy_name="test-policy-v2", canary_robot="r3", actor=supervisor)

        rollout = await database_sync_to_async(rollout_start)(policy_name="test-policy-v2", canary_robot="r1", actor=supervisor)
        with pytest.raises(Conflict, match="still in canary"):
            await database_sync_to_async(rollout_start)(policy_name="test-policy-v2", canary_robot="r2", actor=supervisor)

        async def canary_live() -> bool:
            return await target_states("r1") == [("rollout", "test-policy-v2", "live")]

        await eventually_async(canary_live, timeout=20, what="the canary runs v2")
        assert r1.version == "test-policy-v2" and await robot_version("r1") == "test-policy-v2"
        assert r2.version == "test-policy-v1" and await target_states("r2") == []  # the rest waits for the promotion

        await database_sync_to_async(rollout_promote)(rollout_id=rollout.id, actor=supervisor)

        async def fleet_live() -> bool:
            return await target_states("r2") == [("rollout", "test-policy-v2", "live")]

        await eventually_async(fleet_live, timeout=20, what="r2 runs v2 after the promotion")
        assert r2.version == "test-policy-v2"

        # One click: both robots go back to what they ran before.
        await database_sync_to_async(rollout_rollback)(rollout_id=rollout.id, actor=supervisor)

        async def rolled_back() -> bool:
            latest = [(await target_states(name))[-1] for name in ("r1", "r2")]
            return latest == [("rollback", "test-policy-v1", "live")] * 2

        await eventually_async(rolled_back, timeout=20, what="both robots back on v1")
        assert r1.version == r2.version == "test-policy-v1"
        assert await robot_version("r1") == await robot_version("r2") == "test-policy-v1"
        stage = await database_sync_to_async(lambda: Rollout.objects.get(pk=rollout.id).stage)()
        assert stage == "rolled_back"
        actions = await database_sync_to_async(lambda: list(AuditEvent.objects.order_by("at").values_list("action", flat=True)))()
        for action in ("policy_registered", "policy_canary", "policy_loaded", "policy_promoted", "policy_rolled_back"):
            assert action in actions
    finally:
        for agent, task in ((r1, task1), (r2, task2)):
            await stop_agent(agent, task)


async def test_a_robot_that_refuses_the_checkpoint_fails_the_canary(fleet, users, daphne, daphne_env, tmp_path, settings):
    settings.MEDIA_ROOT = daphne_env["FOREMAN_MEDIA_ROOT"]
    bad = tmp_path / "broken.json"
    bad.write_text("not json")
    await database_sync_to_async(policy_register)(name="broken-v1", checkpoint=bad)
    r1, task = await start_agent(daphne.url, fleet.tokens["r1"], tmp_path / "r1")
    try:
        await eventually_async(lambda: database_sync_to_async(lambda: Robot.objects.get(name="r1").online)(), what="online")
        rollout = await database_sync_to_async(rollout_start)(policy_name="broken-v1", canary_robot="r1", actor=users["admin"])

        async def failed() -> bool:
            return (await target_states("r1"))[-1][2] == "failed"

        await eventually_async(failed, timeout=15, what="the canary refuses")
        error = await database_sync_to_async(lambda: RolloutTarget.objects.get(robot__name="r1").error)()
        assert "JSONDecodeError" in error
        assert r1.version == "test-policy-v1"  # it keeps running what it had
        with pytest.raises(Conflict, match="has not loaded"):
            await database_sync_to_async(rollout_promote)(rollout_id=rollout.id, actor=users["admin"])
    finally:
        r1.stop()
        try:
            await asyncio.wait_for(task, timeout=10)
        except asyncio.CancelledError:
            pass


def test_rollout_api_refuses_clearly(fleet, users, tmp_path, settings):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    client = Client()
    client.force_login(users["supervisor"])
    response = client.post("/api/learning/policies/nope/rollout", {"robot": "r1"}, content_type="application/json")
    assert response.status_code == 404 and "nope" in response.json()["detail"]
    policy_register(name="v9", checkpoint=checkpoint(tmp_path, "v9"))
    response = client.post("/api/learning/policies/v9/rollout", {"robot": "r1"}, content_type="application/json")
    assert response.status_code == 409 and response.json()["code"] == "robot_offline"
    listing = client.get("/api/learning/policies").json()
    assert [p["name"] for p in listing["policies"]] == ["v9"] and listing["policies"][0]["rollable"] is True
    with pytest.raises(Conflict, match="already registered"):
        policy_register(name="v9", checkpoint=checkpoint(tmp_path, "v9"))
    with pytest.raises(Conflict, match="bad policy name"):
        policy_register(name="../escape", checkpoint=checkpoint(tmp_path, "v9"))
    operator = Client()
    operator.force_login(users["operator"])
    assert operator.post("/api/learning/policies/v9/rollout", {"robot": "r1"}, content_type="application/json").status_code == 403


def test_policies_page_for_people_who_watch_the_fleet(fleet, users):
    client = Client()
    client.force_login(users["supervisor"])
    page = client.get("/policies/")
    assert page.status_code == 200 and b"policies.js" in page.content and b'"canRollout": true' in page.content
    client.force_login(users["operator"])
    assert b'"canRollout": false' in client.get("/policies/").content
    client.force_login(users["labeler"])
    assert client.get("/policies/").status_code == 403
