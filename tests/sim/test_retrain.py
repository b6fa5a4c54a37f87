"""One round of learning from interventions: takeovers are labeled and weighted as Sirius does."""

from __future__ import annotations

import numpy as np
import pytest

import robot_agent.retrain as retrain
from robot_agent.policy import load_visuomotor
from robot_agent.sim_robot import DEFAULT_WEIGHTS
from robot_agent.train import collect_demonstrations


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="no shipped weights")
def test_takeovers_are_labeled_and_carry_a_fixed_share_of_the_weight(monkeypatch):
    policy = load_visuomotor(DEFAULT_WEIGHTS)
    # A strict supervisor: any confidence below 0.9 hands the cycle over, so takeovers happen mid-cycle.
    monkeypatch.setattr(retrain, "INTERVENTION_CONFIDENCE", 0.9)
    episodes = retrain.run_supervised(policy, [2000, 2001], every=4)
    taken = [e for e in episodes if e.intervened_at is not None]
    assert taken, "the strict supervisor took over at least one cycle"
    for episode in taken:
        modes = episode.action_modes
        t = episode.intervened_at
        assert set(modes[t:]) == {"human"} and "human" not in modes[:t]
        assert modes[max(0, t - retrain.PRE_INTERVENTION_STEPS): t] == ["pre_intervention"] * min(t, retrain.PRE_INTERVENTION_STEPS)
        assert episode.success, "the scripted supervisor finishes the cycle"
    samples, counts = retrain.round_samples(episodes, policy.config.horizon)
    assert counts["human"] > 0 and counts["robot"] > 0 and len(samples) == 2 * sum(counts.values())
    human = np.repeat([m == "human" for e in episodes for m in np.asarray(e.action_modes)[e.kept]], 2)
    share = samples.weights[human].sum() / samples.weights.sum()
    assert share == pytest.approx(retrain.HUMAN_WEIGHT_SHARE, abs=1e-4)


def test_the_driven_arm_keeps_its_weight_while_it_only_grips():
    # A pick taken over: the left arm centres (moves), then stands still and closes on the nut; the
    # right arm stands still the whole takeover, holding the nut it carries.
    steps = 12
    actions = np.zeros((steps, 10))
    actions[:, 5 + 3] = 1.0  # right: grip held closed
    actions[:6, 0] = 0.01  # left: centring
    actions[:6, 3] = -1.0
    actions[6:, 3] = 1.0  # left: close, no motion
    modes = np.array(["robot"] * 2 + ["human"] * 8 + ["robot"] * 2, dtype=object)
    weights = retrain.arm_weights(modes, actions)
    assert np.all(weights[2:10, 0] == 1.0), "closing in place is the point of the demonstration"
    assert np.all(weights[2:10, 1] == 0.0), "the arm nobody drove teaches nothing"
    assert np.all(weights[modes == "robot"] == 1.0)
    # One takeover, two arms: the left is driven, then the right; each stands still weighs 0 only
    # while the other is driven. Before the person's first command, neither arm is driven.
    actions = np.zeros((10, 10))
    actions[3:5, 0] = 0.01  # left moves
    actions[7:9, 5] = 0.01  # right moves
    modes = np.array(["robot"] + ["human"] * 9, dtype=object)
    weights = retrain.arm_weights(modes, actions)
    assert weights[:, 0].tolist() == [1, 0, 0, 1, 1, 1, 1, 0, 0, 0]
    assert weights[:, 1].tolist() == [1, 0, 0, 0, 0, 0, 0, 1, 1, 1]


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="no shipped weights")
def test_rehearsal_is_the_bases_own_demonstration_set():
    policy = load_visuomotor(DEFAULT_WEIGHTS)
    trained = policy.config.trained
    assert retrain.rehearsal_count(policy) == trained["episodes"] and retrain.rehearsal_count(policy, 3) == 3
    rehearsal = retrain.rehearsal_demonstrations(policy, 1)
    same = collect_demonstrations(1, seed=trained["seed"], horizon=policy.config.horizon, noise=trained["noise"])
    assert np.array_equal(rehearsal.states, same.states) and np.array_equal(rehearsal.chunks, same.chunks)
