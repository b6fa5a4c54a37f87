"""Replay a recorded sim episode: the station from the episode's seed, stepped with the actions the
agent recorded (a hold's braking command included). It gives back what the policy saw before each
step — the 32×32 wrist images and proprioception — which the uploaded 640×480 videos cannot give
exactly; the retraining round learns from these. Sim episodes only: a real robot has no seed.

Every step's state is checked against the recorded one, so a recording that does not belong to its
seed (another sim version, a lost step) is refused instead of teaching the wrong thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from foreman_learning.policies.visuomotor import arm_inputs
from foreman_sim.render import policy_image
from foreman_sim.station import ARMS, NutStation, Outcome

STATE_TOLERANCE = 1e-3  # recorded states are float32; positions are metres


class ReplayMismatch(ValueError):
    """The recorded steps do not reproduce on the episode's seed."""


@dataclass
class Replayed:
    outcome: Outcome
    kept: list[int] = field(default_factory=list)  # steps whose inputs were kept (every `every`)
    images: list[np.ndarray] = field(default_factory=list)  # per kept step: (2, 1, P, P) float32
    states: list[np.ndarray] = field(default_factory=list)  # per kept step: (2, NET_STATE_DIM) float32
    max_state_error: float = 0.0


def replay(seed: int, actions: np.ndarray, recorded_states: np.ndarray | None = None, *, every: int = 2) -> Replayed:
    """Step NutStation(seed) through `actions` (T, 10); keep the policy's inputs every `every` steps."""
    actions = np.asarray(actions, dtype=np.float64)
    if actions.ndim != 2 or actions.shape[1] != NutStation.ACTION_DIM:
        raise ReplayMismatch(f"actions must be (steps, {NutStation.ACTION_DIM}), got {actions.shape}")
    station = NutStation(seed)
    result = Replayed(station.outcome)
    for step, action in enumerate(actions):
        if station.outcome.done:
            raise ReplayMismatch(f"the cycle ended at step {step} of {len(actions)} ({station.outcome.failure_mode or 'success'})")
        if step % every == 0:
            images, states = arm_inputs(station.state_vector(), {f"wrist_{s}": policy_image(station, s) for s in ARMS})
            result.images.append(images)
            result.states.append(states)
            result.kept.append(step)
        station.step(action)
        if recorded_states is not None:
            error = float(np.max(np.abs(station.state_vector() - recorded_states[step])))
            result.max_state_error = max(result.max_state_error, error)
            if error > STATE_TOLERANCE:
                raise ReplayMismatch(f"step {step}: replayed state differs from the recorded one by {error:.4f}")
    result.outcome = station.outcome
    return result
