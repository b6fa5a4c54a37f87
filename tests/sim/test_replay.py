"""A cycle the agent recorded replays exactly on its seed — holds and a person's teleop included —
which is what the retraining round relies on to get back the policy's 32×32 inputs."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from foreman_learning.replay import ReplayMismatch, replay
from foreman_learning.retrain import arm_weights
from tests.sim.recorded import record_sim_cycle


def test_a_recorded_cycle_replays_exactly_with_holds_and_teleop(tmp_path):
    run = record_sim_cycle(tmp_path / "state")
    table = pq.read_table(run.spool / "steps.parquet").to_pydict()
    actions = np.asarray(table["action"], dtype=np.float32)
    states = np.asarray(table["state"], dtype=np.float32)
    modes = np.asarray(table["action_mode"])
    assert {"robot", "pre_intervention", "human"} <= set(modes)
    assert run.ended["intervened"] is True
    replayed = replay(run.seed, actions, states)
    assert replayed.max_state_error < 1e-4
    assert replayed.outcome.failure_mode == run.station.outcome.failure_mode
    assert replayed.outcome.success == run.station.outcome.success
    assert replayed.kept[:3] == [0, 2, 4] and replayed.images[0].shape == (2, 1, 32, 32)

    # The person drove one arm at a time: the other arm's human steps teach nothing.
    weights = arm_weights(modes, actions.astype(np.float64))
    human = modes == "human"
    left_moves = np.abs(actions[:, [0, 1, 2, 4]]).max(axis=1) > 0
    right_moves = np.abs(actions[:, [5, 6, 7, 9]]).max(axis=1) > 0
    # The person drives the left arm until it is done, then the right: the right arm standing still
    # while the left is driven weighs 0, the left's steps (closing in place included) weigh 1.
    first_right = int(np.flatnonzero(human & right_moves)[0])
    left_span = human & (np.arange(len(modes)) < first_right) & (np.cumsum(human & left_moves) > 0)
    assert np.all(weights[left_span, 0] == 1.0) and np.all(weights[left_span, 1] == 0.0)
    assert np.any(left_span & ~left_moves), "the left arm stood still at times while it was driven"
    assert np.all(weights[human & (np.arange(len(modes)) >= first_right), 1] == 1.0)
    assert np.all(weights[modes == "pre_intervention"] == pytest.approx(0.1))

    tampered = actions.copy()
    tampered[100, 0] += 0.05
    with pytest.raises(ReplayMismatch, match="step 100"):
        replay(run.seed, tampered, states)
    with pytest.raises(ReplayMismatch):
        replay(run.seed + 1, actions, states)
