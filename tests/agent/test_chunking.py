"""Asynchronous chunk execution (XR0 style) with controlled inference completion."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable

import numpy as np
import pytest

from foreman_learning.policies.base import PolicyOutput
from robot_agent.chunking import ChunkExecutor, InferenceError, inline_submit


class ScriptedPolicy:
    """Chunk i is [i*100 + 0, i*100 + 1, ...] so every executed action names its chunk and index."""

    def __init__(self, horizon: int = 30) -> None:
        self.horizon = horizon
        self.calls: list[tuple[object, np.ndarray | None]] = []

    def __call__(self, observation: object, prefix: np.ndarray | None) -> PolicyOutput:
        chunk = len(self.calls)
        self.calls.append((observation, prefix))
        actions = np.array([[chunk * 100 + i] for i in range(self.horizon)], dtype=float)
        return PolicyOutput(actions, confidence=0.9)


class ManualSubmit:
    """Futures that complete only when the test says so (inference 'takes' as long as we want)."""

    def __init__(self) -> None:
        self.pending: list[tuple[concurrent.futures.Future[PolicyOutput], Callable[[], PolicyOutput]]] = []

    def __call__(self, fn: Callable[[], PolicyOutput]) -> concurrent.futures.Future[PolicyOutput]:
        future: concurrent.futures.Future[PolicyOutput] = concurrent.futures.Future()
        self.pending.append((future, fn))
        return future

    def complete_all(self) -> None:
        for future, fn in self.pending:
            try:
                future.set_result(fn())
            except Exception as error:  # noqa: BLE001 - an executor hands any error to the future
                future.set_exception(error)
        self.pending.clear()


def test_async_triggers_below_k_passes_prefix_and_drops_executed_actions():
    policy = ScriptedPolicy()
    submit = ManualSubmit()
    executor = ChunkExecutor(policy, submit, refill_below=10, prefix_length=5, supports_prefix=True)

    assert executor.next_action("obs0") is None  # first chunk requested, robot waits
    submit.complete_all()
    executed = [executor.next_action(f"obs{t}")[0] for t in range(1, 21)]
    assert executed == list(range(0, 20))
    assert len(policy.calls) == 1 and not submit.pending  # 10 remain: no request yet

    action = executor.next_action("obs21")  # 10 remain at the start of this tick: not fewer than k yet
    assert action[0] == 20
    assert not submit.pending
    action = executor.next_action("obs22")  # 9 remain (< k): the next inference starts now
    assert action[0] == 21
    assert len(submit.pending) == 1
    # The three ticks while inference runs keep executing the old chunk.
    assert [executor.next_action(f"obs{t}")[0] for t in (23, 24, 25)] == [22, 23, 24]
    submit.complete_all()
    observation, prefix = policy.calls[1]
    assert observation == "obs22"
    assert prefix is not None and list(prefix[:, 0]) == [21, 22, 23, 24, 25]  # next unexecuted actions
    # 4 actions ran since the request (21..24): the new chunk continues at its index 4.
    assert executor.next_action("obs26")[0] == 104
    assert executor.dropped_executed == 4
    assert executor.confidence == 0.9


def test_prefix_not_sent_when_policy_does_not_support_it():
    policy = ScriptedPolicy()
    submit = ManualSubmit()
    executor = ChunkExecutor(policy, submit, refill_below=10, prefix_length=5, supports_prefix=False)
    executor.next_action("o")
    submit.complete_all()
    for _ in range(22):  # the 22nd tick starts with 9 (< k) actions left
        executor.next_action("o")
    submit.complete_all()
    assert len(policy.calls) == 2 and policy.calls[1][1] is None


def test_starvation_holds_and_counts_no_executed_actions():
    policy = ScriptedPolicy(horizon=12)
    submit = ManualSubmit()
    executor = ChunkExecutor(policy, submit, refill_below=10, prefix_length=2, supports_prefix=True)
    executor.next_action("o")
    submit.complete_all()
    for _ in range(12):
        assert executor.next_action("o") is not None
    assert executor.next_action("o") is None  # chunk used up, inference still running
    assert executor.next_action("o") is None
    submit.complete_all()
    # 11 executed while the request (made at 3 remaining... then 2 more... ) ran; the rest of chunk 1 continues.
    nxt = executor.next_action("o")
    assert nxt is not None and nxt[0] >= 100
    assert executor.starved_ticks >= 3


def test_synchronous_mode_infers_only_when_empty_and_robot_waits():
    policy = ScriptedPolicy(horizon=5)
    submit = ManualSubmit()
    executor = ChunkExecutor(policy, submit, refill_below=10, prefix_length=5, supports_prefix=True, synchronous=True)
    assert executor.next_action("a") is None
    submit.complete_all()
    assert [executor.next_action("b")[0] for _ in range(5)] == [0, 1, 2, 3, 4]
    assert len(policy.calls) == 1  # no early refill in sync mode
    assert executor.next_action("c") is None  # now it asks, and waits
    submit.complete_all()
    assert executor.next_action("d")[0] == 100  # nothing dropped: the robot did not move meanwhile
    assert policy.calls[1][1] is None


def test_inline_submit_sync_returns_action_same_tick():
    executor = ChunkExecutor(ScriptedPolicy(horizon=3), inline_submit, synchronous=True)
    assert [executor.next_action("o")[0] for _ in range(4)] == [0, 1, 2, 100]


def test_inference_exception_becomes_inference_error_and_executor_recovers():
    calls = {"n": 0}

    def flaky(observation: object, prefix: np.ndarray | None) -> PolicyOutput:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("CUDA out of memory")
        return PolicyOutput(np.zeros((4, 2)), None)

    executor = ChunkExecutor(flaky, inline_submit, refill_below=2, action_dim=2)
    with pytest.raises(InferenceError, match="CUDA out of memory"):
        executor.next_action("o")
    assert executor.next_action("o") is not None


def test_bad_chunks_are_refused():
    executor = ChunkExecutor(lambda o, p: PolicyOutput(np.full((3, 2), np.nan), None), inline_submit, action_dim=2)
    with pytest.raises(InferenceError, match="unusable"):
        executor.next_action("o")
    executor = ChunkExecutor(lambda o, p: PolicyOutput(np.zeros((3, 5)), None), inline_submit, action_dim=2)
    with pytest.raises(InferenceError, match="5-dim"):
        executor.next_action("o")


def test_reset_abandons_inflight_inference():
    policy = ScriptedPolicy()
    submit = ManualSubmit()
    executor = ChunkExecutor(policy, submit)
    executor.next_action("o")
    executor.reset()
    submit.complete_all()
    assert executor.next_action("o") is None  # the abandoned result is never executed; a new request starts
    assert len(submit.pending) == 1


def test_a_callable_observation_is_taken_only_when_an_inference_starts():
    taken = []

    def observe() -> str:
        taken.append(len(taken))
        return f"obs{len(taken)}"

    executor = ChunkExecutor(lambda observation, prefix: PolicyOutput(np.arange(15, dtype=float)[:, None] * np.ones((1, 2)), 0.9),
                             inline_submit, refill_below=10, action_dim=2)
    for _ in range(30):
        assert executor.next_action(observe) is not None
    assert len(taken) == 5  # one observation per chunk (every 6 ticks here), not one per tick
