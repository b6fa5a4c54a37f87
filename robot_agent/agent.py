"""The agent: wires the robot, policy, control loop, link, cameras, WebRTC, recording and uploads
together on one asyncio event loop. Inference, rendering and video encoding run in worker threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from foreman_learning.policies.base import Policy, PolicyOutput
from foreman_protocol import PROTOCOL_VERSION
from foreman_protocol.messages import (
    Command,
    CommandAck,
    Hello,
    LeaseMessage,
    PolicyRollout,
    RobotToServerMessage,
    ServerToRobotMessage,
    SfuPublish,
    StationChanged,
    StationInfo,
    TeleopCommand,
    TeleopState,
    ViewerSignal,
    Welcome,
)
from robot_agent import __version__
from robot_agent.cameras import Camera, CameraHub, PlayerCamera, RenderedCamera
from robot_agent.chunking import ChunkExecutor, inline_submit, thread_submit
from robot_agent.clock import Clock, MonotonicClock
from robot_agent.config import VIDEO_CODECS, AgentConfig, http_base_url
from robot_agent.control import ControlLoop, LoopSettings
from robot_agent.link import Link
from robot_agent.modes import ModeController
from robot_agent.recording import EpisodeRecorder
from robot_agent.robot import Robot, declared_features, give_ground_truth
from robot_agent.safety import EstopLatch, VelocityLimits
from robot_agent.sfu import SfuPublisher
from robot_agent.upload import Uploader
from robot_agent.webrtc import WebRtcGateway

log = logging.getLogger(__name__)

SPED_UP_SIM_RECORD_FPS = 10.0  # frames per wall second a sped-up sim records by default (its renders cost wall time)


def policy_output(result: Any) -> PolicyOutput:
    """Accept what policies return: PolicyOutput-like objects, (actions, confidence) or bare actions."""
    if isinstance(result, PolicyOutput):
        return result
    if hasattr(result, "actions"):
        confidence = getattr(result, "confidence", None)
        return PolicyOutput(np.asarray(result.actions), float(confidence) if confidence is not None else None)
    if isinstance(result, tuple) and len(result) == 2:
        actions, confidence = result
        return PolicyOutput(np.asarray(actions), float(confidence) if confidence is not None else None)
    return PolicyOutput(np.asarray(result), None)


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        robot: Robot,
        policy: Policy | None,
        *,
        cameras: Sequence[Camera] | None = None,
        clock: Clock | None = None,
        load_policy: Callable[[str], Policy] | None = None,
    ) -> None:
        self.config = config
        self.robot = robot
        self.policy = policy
        self.control_hz = config.control_hz or robot.control_hz  # --control-hz, or the robot's native rate
        self.sped_up_sim = robot.simulated and config.time_scale > 1.0
        give_ground_truth(robot, policy)
        self.load_policy = load_policy
        self.version = policy.version[:500] if policy is not None else "none"  # the protocol's ShortText
        self.state_dir = config.resolved_state_dir
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.clock = clock or MonotonicClock(config.time_scale)
        self.latch = EstopLatch(self.state_dir)
        # Custody and the deadman run on unscaled time: 200 ms is 200 ms of the operator's time.
        self.modes = ModeController(MonotonicClock(1.0), self.latch, VelocityLimits(config.max_speed, config.max_spin))
        self.inference_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self.executor = self._make_executor(policy) if policy is not None else None
        camera_list = list(cameras) if cameras is not None else default_cameras(robot, config)
        record_fps = self.record_fps()
        self.hub = CameraHub(camera_list, video_fps=config.video_fps, idle_fps=record_fps)
        # Frames are sampled at record_fps of wall time (a constant cost whatever the time scale), so
        # in robot time, which the video's clock and the step table share, the rate is record_fps / time_scale.
        self.recorder = EpisodeRecorder(self.state_dir, self.hub.names, record_fps=record_fps / config.time_scale,
                                        control_hz=self.control_hz, robot_type=robot.robot_type,
                                        features=declared_features(robot, self.control_hz))
        self.outgoing: asyncio.Queue[tuple[RobotToServerMessage, bool]] = asyncio.Queue()
        self.uploader = Uploader(http_base_url(config.server), config.token, self.recorder.spool_dir)
        self.loop = ControlLoop(
            robot, self.modes, self.executor, self.clock, self.emit,
            settings=LoopSettings(
                control_hz=self.control_hz, warning_confidence=config.warning_confidence,
                intervention_confidence=config.intervention_confidence, takt_warning_fraction=config.takt_warning_fraction,
                seed=config.seed, max_cycles=config.max_cycles, offline_policy=config.offline_policy,
                sim_time_waits=self.sped_up_sim,
            ),
            recorder=self.recorder, policy_version=lambda: self.version,
            on_cycle_end=lambda result, kept: self._cycle_ended(kept),
            on_mode_change=self._mode_changed,
        )
        self.loop.online = False  # until the first welcome (offline policy applies)
        self.link = Link(config.websocket_url, config.token, hello=self.hello, on_welcome=self.on_welcome,
                         on_message=self.on_message, on_disconnect=self.on_disconnect)
        self.gateway = WebRtcGateway(self.hub, send_signal=lambda m: self.link.send(m), on_teleop=self.on_teleop,
                                     ice_loopback=config.ice_loopback, stamp_frames=config.stamp_frames,
                                     max_viewers=config.max_viewers, codecs=tuple(VIDEO_CODECS[name] for name in config.video_codecs),
                                     bits_per_pixel=config.video_bits_per_pixel)
        self.sfu = SfuPublisher(self.gateway)
        self.teleop_counters: dict[str, int] = {}
        self.command_latency_ms: deque[float] = deque(maxlen=100)
        self.loop.command_ms = lambda: (
            float(np.median(self.command_latency_ms)) if self.command_latency_ms and self.modes.mode in ("teleop", "shared") else None
        )
        self._last_teleop_state = 0.0
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopping = False
        self.server_name: str | None = None  # the robot's name at the server (from welcome)

    def _make_executor(self, policy: Policy) -> ChunkExecutor:
        def infer(observation: Any, prefix: np.ndarray | None) -> PolicyOutput:
            current = self.policy or policy  # a rollout swaps self.policy between cycles
            if prefix is not None and current.supports_prefix:
                return policy_output(current.infer(observation, prefix=prefix))
            return policy_output(current.infer(observation))

        # A sped-up sim runs inference in the control tick and robot time waits for it (the loop holds
        # the clock back): a wall-clock inference would otherwise last time_scale× longer in robot
        # time than on a real robot. Same chunk semantics as `foreman_learning.evaluate`.
        return ChunkExecutor(
            infer, inline_submit if self.sped_up_sim else thread_submit(self.inference_pool), refill_below=self.config.refill_below,
            prefix_length=self.config.prefix_length, synchronous=self.config.sync_inference,
            supports_prefix=policy.supports_prefix, action_dim=self.robot.action_dim or None,
        )

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Run until stopped; raises FatalLinkError if the server refuses the robot."""
        await self.hub.start()
        self._tasks = [
            asyncio.create_task(self._send_loop(), name="sender"),
            asyncio.create_task(self.loop.run(stop=lambda: self._stopping), name="control"),
            asyncio.create_task(self._record_frames(), name="record-frames"),
            asyncio.create_task(self.uploader.run(), name="uploader"),
        ]
        if self.config.sim_supervisor_token:
            from foreman_sim.supervisor import ScriptedSupervisor

            supervisor = ScriptedSupervisor(http_base=http_base_url(self.config.server), token=self.config.sim_supervisor_token,
                                            agent=self, mode=self.config.sim_supervisor_mode)
            self._tasks.append(asyncio.create_task(supervisor.run(), name="sim-supervisor"))
        link_task = asyncio.create_task(self.link.run(), name="link")
        try:
            done, _ = await asyncio.wait([link_task, self._tasks[1]], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # re-raise FatalLinkError or a crash of the control loop
            if self._tasks[1] in done and not self._stopping:
                await self._drain_uploads(timeout_s=30.0)  # --max-cycles reached: hand in what we recorded
        finally:
            link_task.cancel()
            await asyncio.wait([link_task], timeout=5)  # let the socket close cleanly
            await self.shutdown()

    async def shutdown(self) -> None:
        self._stopping = True
        self.loop.abort_cycle()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.gateway.close_all()
        await self.sfu.close()
        await self.hub.stop()
        await asyncio.get_running_loop().run_in_executor(None, self.recorder.close)
        self.inference_pool.shutdown(wait=False, cancel_futures=True)
        close_policy = getattr(self.policy, "close", None)  # one that holds a process (a LeRobot policy)
        if close_policy is not None:
            await asyncio.get_running_loop().run_in_executor(None, close_policy)
        self.robot.close()

    def stop(self) -> None:
        self._stopping = True

    async def _drain_uploads(self, timeout_s: float) -> None:
        """Wait (bounded) until spooled episodes are uploaded; whatever is left stays in the spool."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, lambda: self.recorder.worker.submit(lambda: None).result())
        deadline = loop.time() + timeout_s
        while self.uploader.pending() and loop.time() < deadline:
            self.uploader.wake.set()
            await asyncio.sleep(0.2)

    # ------------------------------------------------------------------ outbound

    def emit(self, message: RobotToServerMessage, reliable: bool) -> None:
        self.outgoing.put_nowait((message, reliable))

    async def _send_loop(self) -> None:
        while True:
            message, reliable = await self.outgoing.get()
            await self.link.send(message, queue_if_offline=reliable)

    def hello(self) -> Hello:
        return Hello(
            protocol=PROTOCOL_VERSION, agent_version=__version__, cameras=self.hub.names,
            capabilities=["teleop", "shared", "webrtc", "datachannel"], policy_version=self.version,
            mode=self.modes.mode, estopped=self.latch.estopped, lease_id=self.modes.lease.id if self.modes.lease else None,
            open_interventions=list(self.loop.open_interventions)[:100], features=declared_features(self.robot, self.control_hz),
        )

    def _mode_changed(self, previous: str, mode: str) -> None:
        # A sped-up sim runs at real time while a person drives it: people (and their commands'
        # network latency) do not speed up with the simulation.
        set_scale = getattr(self.clock, "set_time_scale", None)
        if set_scale is not None and self.config.time_scale != 1.0:
            set_scale(1.0 if mode in ("teleop", "shared") else self.config.time_scale)

    # ------------------------------------------------------------------ inbound

    async def on_welcome(self, welcome: Welcome) -> None:
        log.info("connected to the server as %s", welcome.robot)
        self.server_name = welcome.robot
        self.on_station(welcome.station)
        self.gateway.ice_servers = list(welcome.ice_servers)
        self.gateway.ice_transport_policy = welcome.ice_transport_policy
        asyncio.create_task(self.sfu.set_grant(welcome.sfu))
        if welcome.estopped and not self.latch.estopped:
            self.modes.command("estop", "latched at the server")
        self.modes.welcome_lease(welcome.lease)
        self.loop.online = True
        for message in list(self.loop.open_interventions.values()):
            await self.link.send(message)  # idempotent per id at the server

    def on_station(self, station: StationInfo | None) -> None:
        """The station's takt counts from now on, in the running cycle too (a takt shortened below the
        time it has used raises takt_overrun at once). On no station the last takt stays."""
        if station is not None and station.takt_s != self.loop.settings.takt_s:
            log.info("station %s: takt %.1f s (was %.1f s)", station.name, station.takt_s, self.loop.settings.takt_s)
            self.loop.settings.takt_s = station.takt_s

    async def on_disconnect(self) -> None:
        log.warning("lost the server; offline policy: %s", self.config.offline_policy)
        self.loop.online = False

    async def on_message(self, message: ServerToRobotMessage) -> None:
        match message:
            case Command():
                await self.on_command(message)
            case LeaseMessage(lease=None):
                self.modes.lease_ended(message.ended, message.reason or "revoked")
            case LeaseMessage(lease=granted) if granted is not None:
                self.modes.lease_granted(granted)
                self.loop.person_acted()
            case TeleopCommand():
                self.on_teleop(message)
            case ViewerSignal():
                asyncio.create_task(self.gateway.handle_signal(message))
            case SfuPublish():
                asyncio.create_task(self.sfu.publish(message))
            case PolicyRollout():
                asyncio.create_task(self.rollout(message))
            case StationChanged():
                self.on_station(message.station)
            case Welcome():
                await self.on_welcome(message)

    async def on_command(self, message: Command) -> None:
        ok, error = self.modes.command(message.command, message.reason)
        if ok and message.command == "resume":
            self.loop.person_acted()
        await self.link.send(CommandAck(command=message.id, ok=ok, mode=self.modes.mode, error=error), queue_if_offline=True)

    def on_teleop(self, command: TeleopCommand) -> str | None:
        reason = self.modes.teleop(command)
        if reason is not None:
            self.teleop_counters[reason] = self.teleop_counters.get(reason, 0) + 1
            return reason
        if command.sent_ms is not None:
            # One-way command latency by the two clocks (same machine, or NTP-synced ones).
            latency = time.time() * 1000.0 - command.sent_ms
            if -50.0 < latency < 10_000.0:
                self.command_latency_ms.append(latency)
        now = time.monotonic()
        if now - self._last_teleop_state >= 0.1:
            self._last_teleop_state = now
            self.emit(TeleopState(lease_id=command.lease_id, seq=command.seq, applied_t=round(self.clock.now(), 4)), False)
        return None

    # ------------------------------------------------------------------ policy rollout

    async def rollout(self, message: PolicyRollout) -> None:
        ok, error = True, None
        try:
            if self.load_policy is None:
                raise RuntimeError("this agent cannot load policy checkpoints")
            if not message.url.startswith("/"):
                raise RuntimeError("rollout URL must be a path on this server (the token goes nowhere else)")
            url = http_base_url(self.config.server) + message.url
            async with httpx.AsyncClient(timeout=60, trust_env=False) as client:
                response = await client.get(url, headers={"Authorization": f"Bearer {self.config.token}"})
            response.raise_for_status()
            digest = hashlib.sha256(response.content).hexdigest()
            if digest != message.sha256:
                raise RuntimeError(f"checkpoint sha256 {digest[:12]}… does not match the rollout's {message.sha256[:12]}…")
            directory = self.state_dir / "policies"
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / f"{hashlib.sha256(message.policy_version.encode()).hexdigest()[:16]}.ckpt"
            path.write_bytes(response.content)
            policy = await asyncio.get_running_loop().run_in_executor(None, self.load_policy, str(path))
            version = message.policy_version

            def swap() -> None:
                previous, self.policy = self.policy, policy
                give_ground_truth(self.robot, policy)
                self.version = version
                log.info("policy %s is live", version)
                close_previous = getattr(previous, "close", None)  # one that holds a process: not on the control thread
                if close_previous is not None:
                    threading.Thread(target=close_previous, name="policy-close", daemon=True).start()

            self.loop.pending_swap = swap  # between cycles, never mid-cycle
        except Exception as exc:  # noqa: BLE001 - a failed rollout keeps the current policy
            ok, error = False, f"{type(exc).__name__}: {exc}"[:500]
            log.error("policy rollout %s failed: %s", message.policy_version, error)
        await self.link.send(CommandAck(command=message.id, ok=ok, mode=self.modes.mode, error=error), queue_if_offline=True)

    # ------------------------------------------------------------------ recording

    async def _record_frames(self) -> None:
        # One frame per camera every 1/recorder.record_fps seconds of robot time (record_fps of wall
        # time at the nominal time scale), on a fixed schedule (no drift), repeating the latest frame
        # when the camera has nothing newer: the video has a constant frame rate and frame k shows
        # robot time k/recorder.record_fps into the cycle, which is what labeling and the dataset
        # export line up against the step table — also when a sped-up sim slows down (the CPU, a
        # person driving at real time).
        # The schedule starts with each cycle, so even a cycle shorter than a frame interval has a
        # first frame of every camera.
        period = 1.0 / self.recorder.record_fps
        episode: str | None = None
        deadline = 0.0
        while True:
            cycle = self.loop.cycle
            if cycle is None:
                episode = None
                await asyncio.sleep(0.01)
                continue
            if cycle.episode != episode:
                episode, deadline = cycle.episode, cycle.started_t
            now = self.clock.now()
            if now < deadline:  # wake at the next frame, or soon enough to see a new cycle begin
                await self.clock.sleep_until(min(deadline, now + 0.05 * self.clock_scale()))
                continue
            if now - deadline > 1.0 * self.clock_scale():
                deadline = now  # the machine stalled: start a fresh schedule, do not burst
            deadline += period
            for name in self.hub.names:
                frame = self.hub.latest.get(name)
                if frame is not None:
                    self.recorder.add_frame(name, frame.image)

    def record_fps(self) -> float:
        """Recorded frames per wall second: --record-fps, else the control rate (a row of the dataset
        for every step, as LeRobot records), except on a sped-up sim, where the control rate in wall
        time would be time_scale × as many renders: there SPED_UP_SIM_RECORD_FPS."""
        if self.config.record_fps is not None:
            return self.config.record_fps
        return SPED_UP_SIM_RECORD_FPS if self.sped_up_sim else self.control_hz

    def clock_scale(self) -> float:
        return float(getattr(self.clock, "time_scale", self.config.time_scale))

    def _cycle_ended(self, kept: bool) -> None:
        if kept:
            # The spool write runs in the recorder's worker; wake the uploader after it.
            loop = asyncio.get_running_loop()
            self.recorder.worker.submit(lambda: loop.call_soon_threadsafe(self.uploader.wake.set))


def default_cameras(robot: Robot, config: AgentConfig) -> list[Camera]:
    """The robot's own (rendered) cameras, with --camera NAME=SOURCE replacing or adding cameras."""
    cameras: dict[str, Camera] = {}
    for name in robot.cameras:
        cameras[name] = RenderedCamera(name, robot.capture, max_fps=robot.camera_fps.get(name))
    for name, source in config.camera.items():
        cameras[name] = PlayerCamera(name, source)
    return list(cameras.values())


def spool_dir(state_dir: Path) -> Path:
    return state_dir / "spool"
