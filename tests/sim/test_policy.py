"""The visuomotor policy: train (tiny, reproducible), save/load through the registry, evaluate's
JSON contract, and the sim agent end to end against the real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from foreman_learning.policies.base import Policy
from foreman_learning.policies.expert import ExpertPolicy
from foreman_learning.policies.factory import load_policy, register_policy_scheme
from foreman_learning.policies.remote import OpenPiPolicy, Xr0Policy
from foreman_learning.policies.visuomotor import DEFAULT_WEIGHTS, PolicyConfig, VisuomotorNet, VisuomotorPolicy, save_checkpoint
from foreman_learning.train import collect_demonstrations, fit
from robot_agent.sim_robot import SimRobot

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demonstrations():
    torch.set_num_threads(2)
    return collect_demonstrations(2, seed=500, every=6)


def test_training_lowers_the_loss_and_is_reproducible(demonstrations, tmp_path):
    assert len(demonstrations) > 500 and demonstrations.images.dtype == np.uint8
    assert demonstrations.chunks.shape[1:] == (15, 5)

    def train() -> VisuomotorNet:
        torch.manual_seed(0)
        net = VisuomotorNet(PolicyConfig(heads=3, width=64))
        losses = fit(net, demonstrations, epochs=5, seed=0, batch_size=128, lr=3e-3)
        assert losses[-1] < losses[0] * 0.8, losses
        return net

    first, second = train(), train()
    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, second.state_dict()[name]), name

    path = save_checkpoint(first, tmp_path / "tiny.pt")
    policy = load_policy(str(path))
    assert isinstance(policy, VisuomotorPolicy) and policy.version == "bc-sim-v2"
    robot = SimRobot()
    robot.reset(3)
    output = policy.infer(robot.observation())
    assert output.actions.shape == (15, robot.action_dim) and 0.0 <= output.confidence <= 1.0
    assert np.all(np.isfinite(output.actions))


def test_registry_refuses_clearly(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_policy(str(tmp_path / "missing.pt"))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="not a PyTorch checkpoint"):
        load_policy(str(garbage))
    with pytest.raises(ValueError, match="unknown policy scheme"):
        load_policy("gopher://127.0.0.1:70")
    register_policy_scheme("fixed", lambda spec: ExpertPolicy())
    assert isinstance(load_policy("fixed://anything"), ExpertPolicy)
    assert isinstance(load_policy("expert"), ExpertPolicy)


def declares_the_protocol(policy: Policy) -> bool:
    return (isinstance(policy.version, str) and policy.version != "" and isinstance(policy.supports_prefix, bool)
            and isinstance(policy.needs_ground_truth, bool) and callable(policy.infer))


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="no shipped weights yet")
def test_one_factory_for_every_spec():
    """Checkpoint, expert and the remote schemes all load through load_policy; remote options (the
    agent's language and action_dim) reach the remote policy; nothing connects before the first infer."""
    assert isinstance(load_policy(str(DEFAULT_WEIGHTS)), VisuomotorPolicy)
    assert load_policy("expert").needs_ground_truth
    xr0 = load_policy("xr0://127.0.0.1:1?task_id=sim&prefix=1", language="pick", action_dim=10)
    assert isinstance(xr0, Xr0Policy) and xr0.supports_prefix and xr0.task_id == "sim"
    assert xr0.language == "pick" and xr0.action_dim == 10 and xr0.sock is None
    for scheme in ("ws", "wss"):
        openpi = load_policy(f"{scheme}://127.0.0.1:1", action_dim=10)
        assert isinstance(openpi, OpenPiPolicy) and openpi.action_dim == 10 and openpi.ws is None
    for spec in (str(DEFAULT_WEIGHTS), "expert", "xr0://127.0.0.1:1", "ws://127.0.0.1:1"):
        assert declares_the_protocol(load_policy(spec)), spec


def evaluate_cli(*args: str) -> dict:
    result = subprocess.run([sys.executable, "-m", "foreman_learning.evaluate", *args], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_evaluate_prints_one_json_object_last():
    report = evaluate_cli("--episodes", "3", "--seed", "1000", "--policy", "expert", "--json")
    assert set(report) >= {"success_rate", "mean_cycle_s", "failure_modes", "interventions_raised", "episodes"}
    assert report["episodes"] == 3 and report["success_rate"] == 1.0 and report["failure_modes"] == {}
    assert 45 < report["mean_cycle_s"] < 70


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="no shipped weights yet")
def test_shipped_weights_load_and_evaluate():
    report = evaluate_cli("--episodes", "4", "--seed", "1000")
    assert report["episodes"] == 4 and report["policy"] == "bc-sim-v2"
    assert sum(report["failure_modes"].values()) == round(4 * (1 - report["success_rate"]))


@pytest.mark.django_db(transaction=True)
def test_sim_agent_cycles_against_the_real_server(fleet, daphne, tmp_path):
    """`python -m robot_agent --sim` (what `make run` starts) completes cycles that the server records."""
    from webapp.fleet.models import Episode, Robot

    env = {**os.environ, "FOREMAN_LOG_LEVEL": "WARNING"}
    agent = subprocess.Popen(
        [sys.executable, "-m", "robot_agent", "--server", daphne.url, "--token", fleet.tokens["r1"], "--sim", "--name", "r1",
         "--policy", "expert", "--ice-loopback", "--time-scale", "10", "--state-dir", str(tmp_path / "agent")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if Episode.objects.filter(robot__name="r1", outcome="success").exists():
                break
            assert agent.poll() is None, agent.stdout.read() if agent.stdout else ""
            time.sleep(0.25)
        episode = Episode.objects.filter(robot__name="r1", outcome="success").first()
        assert episode is not None, "no successful cycle within 60 s"
        assert episode.policy_version == "sim-expert-v1" and 45 < episode.duration_s < 70
        robot = Robot.objects.get(name="r1")
        assert robot.online and robot.cameras == ["head", "wrist_left", "wrist_right"]
    finally:
        agent.terminate()
        try:
            agent.wait(timeout=10)
        except subprocess.TimeoutExpired:
            agent.kill()
