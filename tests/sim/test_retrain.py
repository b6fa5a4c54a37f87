"""One round of learning from interventions: takeovers are labeled and weighted as Sirius does."""

from __future__ import annotations

import numpy as np
import pytest

import foreman_learning.retrain as retrain
from foreman_learning.policies.visuomotor import DEFAULT_WEIGHTS, load_visuomotor
from foreman_learning.train import collect_demonstrations
from foreman_learning.weights import HUMAN_WEIGHT_SHARE


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="no shipped weights")
def test_takeovers_are_labeled_and_carry_a_fixed_share_of_the_weight(monkeypatch):
    policy = load_visuomotor(DEFAULT_WEIGHTS)
    # A strict supervisor: any confidence below 0.8 asks for a person, so takeovers happen mid-cycle.
    monkeypatch.setattr(retrain, "INTERVENTION_CONFIDENCE", 0.8)
    episodes = retrain.run_supervised(policy, [2000, 2001], every=4)
    taken = [e for e in episodes if e.intervened_at is not None]
    assert taken, "the strict supervisor took over at least one cycle"
    handed_back = 0
    for episode in taken:
        modes = np.asarray(episode.action_modes, dtype=object)
        human = modes == "human"
        assert not human[: episode.intervened_at].any() and human[episode.intervened_at]
        runs = retrain._runs(human)
        handed_back += "robot" in modes[runs[0][1]:]
        for start, _ in runs:  # Sirius: the robot steps just before each takeover
            before = modes[max(0, start - retrain.PRE_INTERVENTION_STEPS): start]
            assert set(before) <= {"pre_intervention", "human"} and "pre_intervention" in before
        # One arm at a time: while the supervisor drives one arm, the other stands still.
        actions = np.asarray(episode.actions)[human]
        moving = np.stack([np.abs(actions[:, 5 * i: 5 * i + 5][:, [0, 1, 2, 4]]).max(axis=1) > 0 for i in range(2)])
        assert not (moving[0] & moving[1]).any() and moving.any()
    assert handed_back, "a takeover ends when its arm has its next nut in: the robot goes on"
    samples, counts = retrain.round_samples(episodes, policy.config.horizon)
    assert counts["human"] > 0 and counts["robot"] > 0 and len(samples) == 2 * sum(counts.values())
    human = np.repeat([m == "human" for e in episodes for m in np.asarray(e.action_modes)[e.kept]], 2)
    share = samples.weights[human].sum() / samples.weights.sum()
    assert share == pytest.approx(HUMAN_WEIGHT_SHARE, abs=1e-4)


def test_the_supervisor_takes_over_a_pick_going_off_centre():
    # Without any alert: the pick watch sees an arm about to grip its nut by the edge and centres it.
    policy = load_visuomotor(DEFAULT_WEIGHTS)
    watched = retrain.run_supervised(policy, list(range(2000, 2004)), every=8)
    assert any(e.trigger == "pick_watch" for e in watched)
    assert all(e.success for e in watched)


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


def test_a_round_of_only_failed_cycles_still_learns_from_the_person():
    # Every cycle failed: the robot's steps weigh 0, so the person's are all the round has — they
    # keep their weight (a fixed share of nothing made every weight 0, and the share NaN).
    steps = 8
    actions = np.zeros((steps, 10))
    actions[4:, 0] = 0.01
    episode = retrain.SupervisedEpisode(
        seed=2000, success=False, failure_mode="takt_overrun", intervened_at=4, trigger="fault",
        action_modes=["robot"] * 2 + ["pre_intervention"] * 2 + ["human"] * 4, actions=list(actions),
        images=[np.zeros((2, 1, 32, 32), dtype=np.uint8)] * (steps // 2),
        states=[np.zeros((2, 10), dtype=np.float32)] * (steps // 2), kept=list(range(0, steps, 2)))
    samples, counts = retrain.round_samples([episode], horizon=15)
    assert counts == {"robot": 1, "pre_intervention": 1, "human": 2, "shared": 0}
    assert np.isfinite(samples.weights).all() and samples.weights.sum() == 2.0
