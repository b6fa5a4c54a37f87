"""Asynchronous action-chunk execution, as Xiaomi-Robotics-0 deploys it.

The policy returns a chunk of T actions. The control loop executes one action per tick. When fewer
than `refill_below` (k) actions remain, the next inference starts off the control thread with the
current observation and, if the policy accepts one, the next `prefix_length` unexecuted actions as
a prefix (the model keeps them fixed, so the new chunk continues smoothly). When the new chunk
arrives, the N actions executed while it was computed are dropped from its front and execution
continues from action N. Synchronous mode infers only when the chunk is used up and the robot
waits meanwhile (what the reference clients do).
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from foreman_learning.policies.base import PolicyOutput

log = logging.getLogger(__name__)


class InferenceError(Exception):
    """The policy raised (or returned garbage): the loop faults, holds and asks for a person."""


InferFn = Callable[[Any, "np.ndarray | None"], PolicyOutput]
Submit = Callable[[Callable[[], PolicyOutput]], "concurrent.futures.Future[PolicyOutput]"]


@dataclass
class _Request:
    future: concurrent.futures.Future[PolicyOutput]
    executed_since: int  # actions executed since this request was made
    started_s: float


class ChunkExecutor:
    def __init__(
        self,
        infer: InferFn,
        submit: Submit,
        *,
        refill_below: int = 10,
        prefix_length: int = 5,
        synchronous: bool = False,
        supports_prefix: bool = False,
        action_dim: int | None = None,
    ) -> None:
        self.infer = infer
        self.submit = submit
        self.refill_below = 0 if synchronous else refill_below
        self.prefix_length = prefix_length if (supports_prefix and not synchronous) else 0
        self.synchronous = synchronous
        self.action_dim = action_dim
        self.queue: deque[np.ndarray] = deque()
        self.request: _Request | None = None
        self.confidence: float | None = None
        self.inference_ms: float | None = None
        self.inferences = 0
        self.dropped_executed = 0  # actions dropped from new chunks because they ran during inference
        self.starved_ticks = 0  # ticks with no action to execute (waiting for inference)
        self.last_prefix: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the current chunk (mode change, new cycle); an inference in flight is abandoned."""
        self.queue.clear()
        self.request = None
        self.confidence = None  # it described the abandoned chunk

    @property
    def inference_pending(self) -> bool:
        return self.request is not None

    def next_action(self, observation: Any) -> np.ndarray | None:
        """The action for this tick, or None when there is none yet (the robot holds). `observation`
        may be a function that takes it: then it is taken only when an inference starts (a camera
        render and a state snapshot every tick would cost more than the policy)."""
        self._collect()
        if self.request is None and len(self.queue) <= max(0, self.refill_below - 1):
            self._start(observation() if callable(observation) else observation)
            self._collect()  # an inline submit (tests, sync policies) completes at once
        if not self.queue:
            self.starved_ticks += 1
            return None
        action = self.queue.popleft()
        if self.request is not None:
            self.request.executed_since += 1
        return action

    def _start(self, observation: Any) -> None:
        prefix = None
        if self.prefix_length > 0 and self.queue:
            prefix = np.stack(list(self.queue)[: self.prefix_length])
        self.last_prefix = prefix

        def run() -> PolicyOutput:
            return self.infer(observation, prefix)

        self.request = _Request(self.submit(run), executed_since=0, started_s=time.monotonic())

    def _collect(self) -> None:
        request = self.request
        if request is None or not request.future.done():
            return
        self.request = None
        self.inference_ms = (time.monotonic() - request.started_s) * 1000.0
        error = request.future.exception()
        if error is not None:
            raise InferenceError(f"{type(error).__name__}: {error}") from error
        output = request.future.result()
        actions = np.asarray(output.actions, dtype=np.float64)
        if actions.ndim != 2 or actions.shape[0] == 0 or not np.all(np.isfinite(actions)):
            raise InferenceError(f"policy returned an unusable chunk of shape {actions.shape}")
        if self.action_dim is not None and actions.shape[1] != self.action_dim:
            raise InferenceError(f"policy returned {actions.shape[1]}-dim actions; the robot takes {self.action_dim}")
        self.inferences += 1
        self.confidence = output.confidence
        executed = request.executed_since
        self.dropped_executed += min(executed, len(actions))
        self.queue = deque(actions[executed:])


def thread_submit(executor: concurrent.futures.Executor) -> Submit:
    return lambda fn: executor.submit(fn)


def inline_submit(fn: Callable[[], PolicyOutput]) -> concurrent.futures.Future[PolicyOutput]:
    """Run inference at once in the caller (tests, trivially cheap policies)."""
    future: concurrent.futures.Future[PolicyOutput] = concurrent.futures.Future()
    try:
        future.set_result(fn())
    except Exception as error:  # noqa: BLE001 - delivered through the future like a thread would
        future.set_exception(error)
    return future
