"""A policy for ALOHA trained with the nut station's own training code (foreman_learning.train.fit) on
the scripted expert's demonstrations from the real MuJoCo robot (robot_agent/train_aloha.py): a short
run here, its checkpoint loading as an ALOHA policy anywhere a policy is loaded, reading no ground
truth, and driving the robot through the agent's loop. The long run's success rate is in docs/robots.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from foreman_learning.policies.aloha_visuomotor import AlohaVisuomotorPolicy, action_to_arm_targets, arm_targets_to_action
from foreman_learning.policies.factory import load_policy
from foreman_learning.policies.visuomotor import load_visuomotor
from robot_agent.__main__ import build_policy
from robot_agent.config import AgentConfig
from robot_agent.drivers.aloha import AlohaRobot
from robot_agent.evaluate import run_episode
from robot_agent.train_aloha import main as train_aloha


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("aloha") / "aloha-bc-test.pt"
    assert train_aloha(["--episodes", "2", "--epochs", "2", "--every", "6", "--out", str(path), "--version", "aloha-bc-test"]) == 0
    return path


def test_targets_relative_to_the_joints_round_trip() -> None:
    rng = np.random.default_rng(3)
    state = rng.uniform(-1, 1, 28).astype(np.float32)
    actions = rng.uniform(-1, 1, (20, 14)).astype(np.float32)
    actions[:, [6, 13]] = rng.uniform(0, 1, (20, 2))
    assert np.allclose(arm_targets_to_action(action_to_arm_targets(actions, state), state), actions, atol=1e-5)


def test_the_checkpoint_is_an_aloha_policy_that_reads_no_ground_truth(checkpoint: Path, capsys: Any) -> None:
    policy = load_policy(str(checkpoint))
    assert isinstance(policy, AlohaVisuomotorPolicy) and policy.version == "aloha-bc-test" and not policy.needs_ground_truth
    with pytest.raises(ValueError, match="not the nut station"):
        load_visuomotor(checkpoint)  # retraining fine-tunes nut-station policies only
    robot = AlohaRobot()
    try:
        robot.reset(100)
        observation = robot.observation()
        assert "ground_truth" not in observation
        output = policy.infer(observation)
        assert output.actions.shape == (20, 14) and np.all(np.isfinite(output.actions)) and 0.0 <= (output.confidence or 0.0) <= 1.0
        assert np.all(output.actions[:, [6, 13]] >= 0) and np.all(output.actions[:, [6, 13]] <= 1)
        # The agent takes it as --policy PATH for the ALOHA robot, and its loop drives the arms with it.
        built = build_policy(AgentConfig(robot="gym:gym_aloha/AlohaInsertion-v0", policy=str(checkpoint)), robot)
        assert isinstance(built, AlohaVisuomotorPolicy)
        before = robot.state()[:14].copy()
        episode = run_episode(robot, built, 100, max_seconds=1.0)
        assert episode.cycle_s > 0 and not np.allclose(robot.state()[:14], before, atol=1e-3)
    finally:
        robot.close()


def test_the_training_run_reports_what_it_did(tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "again.pt"
    assert train_aloha(["--episodes", "1", "--epochs", "1", "--every", "8", "--out", str(out), "--evaluate", "1"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (report["demonstrations"], report["tried"]) == (1, 1) and out.is_file()  # the expert does seed 0 (deterministic)
    assert report["evaluation"]["seeds"] == "100-100" and report["evaluation"]["episodes"] == 1
