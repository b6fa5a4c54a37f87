"""One round of learning from interventions: takeovers are labeled and weighted as Sirius does."""

from __future__ import annotations

import numpy as np
import pytest

import robot_agent.retrain as retrain
from robot_agent.policy import load_visuomotor
from robot_agent.sim_robot import DEFAULT_WEIGHTS


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
