"""policy_rollout: download with the robot token, verify sha256, swap between cycles, acknowledge."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from foreman_protocol.messages import PolicyRollout
from tests.agent.station import ConfidencePolicy, KinematicStation, make_agent

CHECKPOINT = json.dumps({"version": "test-policy-v2", "confidence": 0.8}).encode()


class PolicyServer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # http.server's naming
        if self.headers.get("Authorization") != "Bearer frt_rollout" or self.path != "/api/robot/policies/test-policy-v2":
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(CHECKPOINT)))
        self.end_headers()
        self.wfile.write(CHECKPOINT)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def policy_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), PolicyServer)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def load_json_policy(path: str) -> ConfidencePolicy:
    spec = json.loads(open(path).read())
    return ConfidencePolicy(confidences=(spec["confidence"],), version=spec["version"])


def rollout(sha256: str, url: str = "/api/robot/policies/test-policy-v2") -> PolicyRollout:
    return PolicyRollout(type="policy_rollout", id="roll-1", policy_version="test-policy-v2", url=url, sha256=sha256)


def acks(agent: Any) -> list[dict[str, Any]]:
    return [json.loads(m) for m in agent.link.outbox if json.loads(m)["type"] == "command_ack"]


async def test_rollout_verified_and_swapped_between_cycles(policy_server, tmp_path):
    station = KinematicStation(cycle_steps=20)
    agent = make_agent(policy_server, "frt_rollout", tmp_path, station, ConfidencePolicy())
    agent.load_policy = load_json_policy
    agent.loop.online = True
    for _ in range(5):
        agent.loop.tick()
    assert agent.loop.cycle is not None
    await agent.rollout(rollout(hashlib.sha256(CHECKPOINT).hexdigest()))
    assert acks(agent) == [{"type": "command_ack", "command": "roll-1", "ok": True, "mode": "autonomous", "error": None}]
    assert agent.version == "test-policy-v1"  # not mid-cycle
    episode = agent.loop.cycle.episode
    for _ in range(500):  # inference runs in its thread: tick until the next cycle starts (bounded)
        agent.loop.tick()
        if agent.loop.cycle is not None and agent.loop.cycle.episode != episode:
            break
        await asyncio.sleep(0.002)
    assert agent.loop.cycle is not None and agent.loop.cycle.episode != episode  # the next cycle started…
    assert agent.version == "test-policy-v2" and agent.policy.version == "test-policy-v2"  # …with the new policy
    agent.recorder.close()


@pytest.mark.parametrize(("sha", "url", "error"), [
    ("0" * 64, "/api/robot/policies/test-policy-v2", "does not match"),
    (hashlib.sha256(CHECKPOINT).hexdigest(), "/api/robot/policies/unknown", "404"),
    (hashlib.sha256(CHECKPOINT).hexdigest(), "http://127.0.0.2/elsewhere", "path on this server"),
])
async def test_bad_rollouts_keep_the_current_policy(policy_server, tmp_path, sha, url, error):
    agent = make_agent(policy_server, "frt_rollout", tmp_path, KinematicStation(cycle_steps=5), ConfidencePolicy())
    agent.load_policy = load_json_policy
    await agent.rollout(rollout(sha, url))
    ack = acks(agent)[0]
    assert ack["ok"] is False and error in ack["error"]
    assert agent.loop.pending_swap is None and agent.version == "test-policy-v1"
    agent.recorder.close()


def test_a_rolled_out_lerobot_archive_unpacks_plain_names_only(tmp_path):
    import zipfile

    from robot_agent.lerobot_policy import is_lerobot_archive, unpack_lerobot_archive

    good, evil = tmp_path / "good.ckpt", tmp_path / "evil.ckpt"
    for path, extra in ((good, "policy_preprocessor.json"), (evil, "../../outside.txt")):
        with zipfile.ZipFile(path, "w") as archive:
            for name in ("config.json", "model.safetensors", extra):
                archive.writestr(name, "{}")
    plain = tmp_path / "foreman.ckpt"
    plain.write_bytes(b"not a zip")
    assert is_lerobot_archive(good) and is_lerobot_archive(evil) and not is_lerobot_archive(plain)
    into = unpack_lerobot_archive(good, tmp_path / "good")
    assert sorted(p.name for p in into.iterdir()) == ["config.json", "model.safetensors", "policy_preprocessor.json"]
    with pytest.raises(ValueError, match="plain file names only"):
        unpack_lerobot_archive(evil, tmp_path / "evil")
    assert not (tmp_path / "outside.txt").exists() and not (tmp_path.parent / "outside.txt").exists()
