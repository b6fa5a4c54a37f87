"""The control loop: a fixed-rate tick (30 Hz of robot time by default) that decides who drives
(policy, person, nobody), applies one action, watches the intervention triggers, runs cycles
(episodes) and records every step.

Triggers, each → protective hold + `intervention_raised`, then wait for a person:
- policy uncertainty: confidence < warning level → `warning`; < intervention level → intervention;
- station faults reported by the robot (torque out of range, nut missing) and inference failures;
- the cycle is about to overrun its takt (takt_warning_fraction of the takt used, not done).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from pydantic import ValidationError

from foreman_protocol.episodes import ActionMode
from foreman_protocol.messages import (
    FAILURE_MODE_PATTERN,
    GENERIC_FAILURE_MODES,
    CycleEnded,
    CycleStarted,
    FailureMode,
    Fault,
    InterventionRaised,
    Outcome,
    RobotToServerMessage,
    RobotTrigger,
    Severity,
    Telemetry,
    Warning,
)
from robot_agent.chunking import ChunkExecutor, InferenceError
from robot_agent.clock import Clock
from robot_agent.modes import ModeController
from robot_agent.recording import EpisodeInfo, EpisodeRecorder, EpisodeResult, StepRecord, utc_iso
from robot_agent.robot import Robot, StationStatus, clamp_action

log = logging.getLogger(__name__)

SIM_CATCH_UP_TICKS = 3
Emit = Callable[[RobotToServerMessage, bool], None]  # (message, reliable): reliable ones wait out outages


@dataclass
class LoopSettings:
    control_hz: float = 30.0
    takt_s: float = 76.0
    warning_confidence: float = 0.7
    intervention_confidence: float = 0.5
    takt_warning_fraction: float = 0.95
    telemetry_hz: float = 10.0
    seed: int = 1000
    max_cycles: int | None = None
    offline_policy: str = "finish"
    # A sped-up simulation: when the CPU cannot keep up, robot time waits for the loop (so the
    # takt and the station's physics keep the same clock) instead of skipping control periods.
    sim_time_waits: bool = False


@dataclass
class Cycle:
    episode: str
    index: int
    seed: int
    started_t: float
    intervened: bool = False
    takt_triggered: bool = False
    steps: int = 0
    actions_clamped: int = 0


@dataclass
class LoopStats:
    ticks: int = 0
    overruns: int = 0
    jitter_ms: float = 0.0
    faults: int = 0
    bad_telemetry: int = 0  # frames the protocol refused (see _telemetry)
    actions_clamped: int = 0  # action numbers outside the robot's declared limits, sent clamped
    interventions: int = 0
    cycles_started: int = 0
    cycles_ended: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


class ControlLoop:
    def __init__(
        self,
        robot: Robot,
        modes: ModeController,
        executor: ChunkExecutor | None,
        clock: Clock,
        emit: Emit,
        *,
        settings: LoopSettings | None = None,
        recorder: EpisodeRecorder | None = None,
        policy_version: Callable[[], str] = lambda: "",
        on_cycle_end: Callable[[EpisodeResult, bool], None] | None = None,
        on_mode_change: Callable[[str, str], None] | None = None,
        wall_time: Callable[[], float] = time.monotonic,
    ) -> None:
        self.robot = robot
        self.modes = modes
        self.executor = executor
        self.clock = clock
        self.emit = emit
        # Its own settings object: the agent updates takt_s from the server's welcome.
        self.settings = settings if settings is not None else LoopSettings()
        self.recorder = recorder
        self.policy_version = policy_version
        self.on_cycle_end = on_cycle_end
        self.on_mode_change = on_mode_change
        self.wall_time = wall_time
        self.dt = 1.0 / self.settings.control_hz
        self.cycle: Cycle | None = None
        self.cycle_count = 0
        self.status = StationStatus()
        self.warning: str | None = None
        self.online = True
        self.open_interventions: dict[str, InterventionRaised] = {}
        self.stats = LoopStats()
        self.last_confidence: float | None = None
        self._last_telemetry = -1e9
        self._last_mode = modes.mode
        self.next_tick_t: float | None = None
        self.pending_swap: Callable[[], None] | None = None  # e.g. a rolled-out policy, applied between cycles
        self.command_ms: Callable[[], float | None] = lambda: None  # median teleop command latency, if measured

    # ------------------------------------------------------------------ running

    async def run(self, stop: Callable[[], bool] = lambda: False) -> None:
        self.next_tick_t = self.clock.now()
        while not stop():
            try:
                self.tick()
            except Exception as error:  # a bug in one tick must not leave the robot unsupervised
                log.exception("control tick failed")
                self._fault("agent_error", f"{type(error).__name__}: {error}")
            self.next_tick_t += self.dt
            now = self.clock.now()
            lateness = now - self.next_tick_t
            # More than a tick behind, a real robot skips ahead (never bursts to catch up). A sped-up
            # sim first catches up on a short stall (an inference tick lasts more than its 0.8 ms
            # period at 40×) by running ticks back to back; behind by more, its robot time waits.
            if lateness > self.dt * (SIM_CATCH_UP_TICKS if self.settings.sim_time_waits else 1):
                self.stats.overruns += 1
                hold_back = getattr(self.clock, "hold_back", None)
                if self.settings.sim_time_waits and hold_back is not None:
                    hold_back(self.next_tick_t)  # a sped-up sim slows down rather than lose control periods
                else:
                    self.next_tick_t = now  # a real robot's time does not wait: skip ahead
            await self.clock.sleep_until(self.next_tick_t)
            self.stats.jitter_ms = max(0.0, (self.clock.now() - self.next_tick_t) * 1000.0)
            if self.settings.max_cycles is not None and self.cycle is None and self.cycle_count >= self.settings.max_cycles:
                break

    def tick(self) -> None:
        self.stats.ticks += 1
        self.modes.tick()
        self._apply_offline_policy()
        mode = self.modes.mode
        if mode != self._last_mode:
            self._mode_changed(self._last_mode, mode)
            self._last_mode = mode
        if self.cycle is None:
            self._maybe_start_cycle()

        action: np.ndarray | None = None
        action_mode: ActionMode = "robot"
        confidence = None
        if self.cycle is not None and mode in ("autonomous", "shared") and self.executor is not None:
            try:
                action = self.executor.next_action(self.robot.observation)
            except InferenceError as error:
                self._fault("inference_failed", str(error))
                action = None
            # Judge confidence only by the chunk actually being executed.
            confidence = self.executor.confidence if action is not None else None
            if confidence is not None:
                self.last_confidence = confidence
            if action is not None and mode == "shared":
                action = self.robot.shared_action(action, self.modes.teleop_velocity())
                action_mode = "shared"
        elif self.cycle is not None and mode == "teleop":
            command = self.modes.teleop_velocity()  # None: no command yet or deadman tripped → hold
            if command is not None:
                action = self.robot.teleop_action(command)
            action_mode = "human"

        try:
            if action is not None:
                action, clamped = clamp_action(action, self.robot.action_features)
                self.stats.actions_clamped += clamped
                if self.cycle is not None:
                    self.cycle.actions_clamped += clamped
            self.status = self.robot.step(action) if action is not None else self.robot.hold()
        except Exception as error:  # a robot error faults and holds, never kills the agent
            log.exception("robot step failed")
            self._fault("robot_error", f"{type(error).__name__}: {error}")
            self.status = StationStatus(phase=self.status.phase, progress=self.status.progress)

        if self.cycle is not None:
            self.cycle.steps += 1
            if self.recorder is not None:
                self._record(action, action_mode if action is not None or mode != "autonomous" else "robot", confidence)
            self._check_triggers(confidence)
            if self.status.done:
                self._end_cycle()
        self._telemetry()

    # ------------------------------------------------------------------ cycles

    def _maybe_start_cycle(self) -> None:
        # A person who takes over an idle robot (after a failed cycle, say) gets the next part to
        # work on: that cycle is theirs from the start, recorded as an intervened episode.
        if self.modes.mode not in ("autonomous", "teleop", "shared") or not self.online:
            return
        if self.settings.max_cycles is not None and self.cycle_count >= self.settings.max_cycles:
            return
        if self.pending_swap is not None:
            swap, self.pending_swap = self.pending_swap, None
            swap()
        index = self.cycle_count
        seed = self.settings.seed + index
        self.status = self.robot.reset(seed)
        if self.executor is not None:
            self.executor.reset()
        now = self.clock.now()
        self.cycle = Cycle(episode=str(uuid.uuid4()), index=index, seed=seed, started_t=now)
        self.cycle_count += 1
        self.stats.cycles_started += 1
        self.warning = None
        if self.recorder is not None:
            self.recorder.begin(EpisodeInfo(self.cycle.episode, index, self.policy_version(), seed, utc_iso(time.time()), now))
        self.emit(CycleStarted(episode=self.cycle.episode, cycle_index=index, policy_version=(self.policy_version() or None),
                               seed=seed, started_t=now), True)
        if self.modes.mode in ("teleop", "shared"):
            # A new part never moves on the previous part's stick input (a held "close" would grab
            # at nothing): the arm holds until the person sends a command for this part.
            self.modes.forget_command()
            self.cycle.intervened = True
            if self.recorder is not None:
                self.recorder.mark_intervention(now)

    def _end_cycle(self, outcome: Outcome | None = None, failure_mode: FailureMode | None = None) -> None:
        cycle, self.cycle = self.cycle, None
        if cycle is None:
            return
        if outcome is None:
            outcome = "success" if self.status.success else "failure"
            failure_mode = None if self.status.success else self._declared_failure_mode(self.status.failure_mode)
        duration = max(0.0, self.clock.now() - cycle.started_t)
        result = EpisodeResult(outcome=outcome, failure_mode=failure_mode, duration_s=duration, intervened=cycle.intervened)
        self.stats.cycles_ended += 1
        self.stats.outcomes[outcome] = self.stats.outcomes.get(outcome, 0) + 1
        self.emit(CycleEnded(episode=cycle.episode, outcome=outcome, failure_mode=failure_mode,
                             duration_s=round(duration, 3), intervened=cycle.intervened, actions_clamped=cycle.actions_clamped), True)
        keep = outcome != "success" or cycle.intervened
        if self.recorder is not None:
            self.recorder.finish(result, keep=keep)
        if self.on_cycle_end is not None:
            self.on_cycle_end(result, keep)
        if self.executor is not None:
            self.executor.reset()
        log.info("cycle %d ended: %s%s%s in %.1f s", cycle.index, outcome, f" ({failure_mode})" if failure_mode else "",
                 " after intervention" if cycle.intervened else "", duration)

    def _declared_failure_mode(self, reported: str | None) -> str:
        """What the driver reported if the robot declares it (or it is generic, or the robot declares
        none); else `other`, so the server and the labelers see only the robot's own vocabulary."""
        if reported is None:
            return "other"
        declared = self.robot.failure_modes
        known = reported in GENERIC_FAILURE_MODES or any(mode.key == reported for mode in declared)
        if known or (not declared and re.match(FAILURE_MODE_PATTERN, reported)):
            return reported
        log.warning("the robot reported the undeclared failure mode %r: sent as other", reported)
        return "other"

    def abort_cycle(self) -> None:
        if self.cycle is not None:
            self._end_cycle("aborted", None)

    # ------------------------------------------------------------------ safety

    def _mode_changed(self, previous: str, mode: str) -> None:
        if self.on_mode_change is not None:
            self.on_mode_change(previous, mode)
        if mode not in ("autonomous", "shared") and self.executor is not None:
            self.executor.reset()  # never resume on a chunk computed before a person stepped in
        if mode == "estopped" and self.recorder is not None and self.cycle is not None:
            self.cycle.intervened = True
        if mode in ("teleop", "shared") and self.cycle is not None:
            self.cycle.intervened = True
            if self.recorder is not None:
                self.recorder.mark_intervention(self.clock.now())

    def _apply_offline_policy(self) -> None:
        if self.online:
            if self.modes.mode == "hold" and self.modes.hold_reason == "server unreachable":
                self.modes.command("resume")
            return
        if self.settings.offline_policy == "hold" and self.modes.mode == "autonomous":
            self.modes.protective_hold("server unreachable")

    def _check_triggers(self, confidence: float | None) -> None:
        if not self.modes.policy_drives:
            return
        status = self.status
        if status.fault:
            self.stats.faults += 1
            self.emit(fault_message(status.fault, status.fault_detail), True)
            self.raise_intervention("fault", "high", f"{status.fault}: {status.fault_detail}"[:500])
            return
        if confidence is not None:
            if confidence < self.settings.intervention_confidence:
                severity: Severity = "high" if confidence < self.settings.intervention_confidence * 0.7 else "medium"
                self.raise_intervention("policy_uncertainty", severity, f"confidence {confidence:.2f} < {self.settings.intervention_confidence:.2f}")
                return
            if confidence < self.settings.warning_confidence:
                if self.warning is None:
                    self.warning = f"low confidence {confidence:.2f}"
                    self.emit(Warning(kind="low_confidence", detail=f"confidence {confidence:.2f} < {self.settings.warning_confidence:.2f}"), False)
            elif self.warning is not None and self.warning.startswith("low confidence"):
                self.warning = None
        cycle = self.cycle
        if cycle is not None and not cycle.takt_triggered and not status.done:
            elapsed = self.clock.now() - cycle.started_t
            if elapsed >= self.settings.takt_warning_fraction * self.settings.takt_s:
                cycle.takt_triggered = True
                self.raise_intervention("takt_overrun", "medium", f"{elapsed:.0f} s of the {self.settings.takt_s:.0f} s takt used, cycle not done")

    def _fault(self, code: str, detail: str) -> None:
        self.stats.faults += 1
        self.emit(fault_message(code, detail), True)
        if self.modes.mode not in ("estopped", "hold"):
            self.raise_intervention("fault", "high", f"{code}: {detail}"[:500])

    def raise_intervention(self, trigger: RobotTrigger, severity: Severity, detail: str) -> str:
        """Protective hold and ask for a person. Re-sent after reconnects until a person acts."""
        self.modes.protective_hold(f"intervention: {trigger}")
        if self.executor is not None:
            self.executor.reset()
        intervention = str(uuid.uuid4())
        message = InterventionRaised(intervention=intervention, trigger=trigger, severity=severity, detail=detail[:500],
                                     episode=self.cycle.episode if self.cycle else None)
        self.open_interventions[intervention] = message
        self.stats.interventions += 1
        if self.cycle is not None:
            self.cycle.intervened = True
            if self.recorder is not None:
                self.recorder.mark_intervention(self.clock.now())
        log.warning("intervention %s: %s (%s)", trigger, detail, severity)
        self.emit(message, True)
        return intervention

    def person_acted(self) -> None:
        """A lease or a resume settled the open interventions: stop re-sending them."""
        self.open_interventions.clear()

    # ------------------------------------------------------------------ recording and telemetry

    def _record(self, action: np.ndarray | None, action_mode: ActionMode, confidence: float | None) -> None:
        assert self.recorder is not None and self.cycle is not None
        state = self.robot.state()
        if action is None:  # a hold: record the braking command it applied, so the episode replays exactly
            action = self.robot.applied_action()
        self.recorder.add_step(StepRecord(
            t=self.clock.now() - self.cycle.started_t, phase=self.status.phase, mode=self.modes.mode,
            action_mode=action_mode,
            progress=float(self.status.progress), confidence=confidence, torque_nm=self.status.torque_nm,
            state=[float(x) for x in state],
            action=[float(x) for x in action] if action is not None else [0.0] * self.robot.action_dim,
            lease_id=self.modes.lease.id if self.modes.lease is not None and self.modes.mode in ("teleop", "shared") else None,
        ))

    def _telemetry(self) -> None:
        wall = self.wall_time()
        if wall - self._last_telemetry < 1.0 / self.settings.telemetry_hz:
            return
        self._last_telemetry = wall
        try:
            message = self.telemetry()
        except ValidationError as error:
            # A driver reporting something the protocol cannot carry (a NaN pose, say) costs one
            # telemetry frame, never the control loop.
            self.stats.bad_telemetry += 1
            log.warning("telemetry not sent: %s", error.errors()[0]["msg"] if error.errors() else error)
            return
        self.emit(message, False)

    def telemetry(self) -> Telemetry:
        cycle = self.cycle
        elapsed = max(0.0, self.clock.now() - cycle.started_t) if cycle else 0.0
        warning = self.warning
        if self.modes.deadman_active and self.modes.mode == "teleop":
            warning = "deadman: no teleop command for 200 ms"
        confidence = self.last_confidence if self.modes.policy_drives else None
        inference_ms = self.executor.inference_ms if self.executor is not None else None
        torque = self.status.torque_nm
        return Telemetry.model_validate({
            "t": round(self.clock.now(), 4), "mode": self.modes.mode, "phase": self.status.phase[:64],
            "progress": float(min(1.0, max(0.0, self.status.progress))), "cycle_index": cycle.index if cycle else max(0, self.cycle_count - 1),
            "confidence": float(min(1.0, max(0.0, confidence))) if confidence is not None else None,
            "takt_elapsed_s": round(elapsed, 3), "takt_s": self.settings.takt_s, "warning": warning,
            "torque_nm": float(torque) if torque is not None and np.isfinite(torque) else None,
            "arms": self.robot.arm_poses(),
            "latency": {"inference_ms": round(inference_ms, 2) if inference_ms is not None else None,
                        "loop_jitter_ms": round(self.stats.jitter_ms, 2), "command_ms": _rounded(self.command_ms())},
        })


def fault_message(code: str, detail: str) -> Fault:
    """A driver's fault as the protocol carries it: its code a name (odd characters replaced), detail cut to size."""
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", code)[:64] or "fault"
    return Fault(code=name, detail=detail[:500])


def _rounded(value: float | None) -> float | None:
    return round(max(0.0, value), 2) if value is not None else None
