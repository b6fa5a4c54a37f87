"""The Sirius training signal, per step (numpy only: the server's export writes it too).

Who acted at a step (its action mode) sets its weight: the robot's own driving 1, its last steps
before a person took over (`pre_intervention`) PRE_INTERVENTION_WEIGHT, a person's (human, shared)
1; in a failed cycle only the person's steps count (the robot's part is not worth imitating, and a
failure nobody caught teaches nothing). Then the person's steps are scaled to carry
HUMAN_WEIGHT_SHARE of the whole round's weight, however few they are.
"""

from __future__ import annotations

import numpy as np

from foreman_protocol.episodes import HUMAN_ACTION_MODES

HUMAN_WEIGHT_SHARE = 0.3  # measured with a full rehearsal: 0.5 gave 93–96% on held-out seeds, 0.3 gave 98–99%
PRE_INTERVENTION_WEIGHT = 0.1
WEIGHTED_MODES = ("robot", "pre_intervention", "human", "shared")  # any other mode: left out (0)


def step_weights(modes: np.ndarray, success: bool, good_demo: bool | None = None) -> np.ndarray:
    """(T,) float32 weights of one cycle's steps by who acted, before the human share is applied.
    A labeler who said the person's recovery is no good demonstration (`good_demo` False) leaves only
    the robot's own steps."""
    modes = np.asarray(modes)
    if good_demo is False:
        modes = np.where(modes == "robot", modes, "excluded")
    weights = np.select([modes == "pre_intervention", np.isin(modes, WEIGHTED_MODES)], [PRE_INTERVENTION_WEIGHT, 1.0], 0.0)
    if not success:
        weights[~np.isin(modes, HUMAN_ACTION_MODES)] = 0.0
    return weights.astype(np.float32)


def share_human_weight(weights: np.ndarray, human: np.ndarray) -> np.ndarray:
    """`weights` with the person's (`human`) scaled to HUMAN_WEIGHT_SHARE of the total, in place and
    returned. Left as they are when either side carries nothing (then the one side is all there is)."""
    total_human, total_other = weights[human].sum(), weights[~human].sum()
    if total_human > 0 and total_other > 0:
        weights[human] *= (HUMAN_WEIGHT_SHARE / (1 - HUMAN_WEIGHT_SHARE)) * total_other / total_human
    return weights
