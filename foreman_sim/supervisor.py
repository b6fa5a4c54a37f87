"""The scripted supervisor of the learning round: the sim's expert as a remote teleoperator.

It does what a person at the dashboard does, over the same path: it is a user with an API token on
the fleet WebSocket (`/ws/fleet/`); when its robot holds for an intervention it sends `claim`, gets
a lease from the server (which the server hands to the robot), drives one arm at a time with
`teleop` messages relayed by the server (lease-bound, sequence-numbered, deadman-guarded on the
robot), renews the lease with `heartbeat`, and hands back with `release` once that arm has installed
its next nut. It also watches every pick, as a person watching the wrist camera would: an arm coming
down on its feeder nut off its centre is about to grip the nut by its edge (the nut then slips out
in transit or meets the hole off its axis, and the robot raises nothing before that), so it takes
that arm over, centres and grips, and hands back once the nut is held. In `resume` mode (the soak
bench) it acknowledges the robot's open interventions and sends `resume` instead, as a supervisor
does with an alert that needs no hands. The only thing a person would not have is its eyes: it reads
the simulated station's ground truth (`Expert.teleop_command`), which is why it lives in the sim
agent's process.

Started by `python -m robot_agent --sim --sim-supervisor-token TOKEN` (the learning round does
this).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from foreman_sim.expert import PICK_CLOSE_M, Expert
from foreman_sim.station import ARMS, NUT_ON_FEEDER_Z, TORQUE_FAULT_NM, NutStation

log = logging.getLogger(__name__)

CLAIM_TIMEOUT_S = 5.0
LEASE_ARRIVAL_TIMEOUT_S = 5.0
MAX_TAKEOVER_S = 120.0  # of robot time: a takeover that achieves nothing is handed back
RESUME_REACTION_S = 5.0  # of robot time: a resuming supervisor looks at the alert before letting the robot go on
# A pick going wrong: the gripper this close above its nut and this far off the nut's centre.
PICK_WATCH_HEIGHT_M = 0.015
PICK_WATCH_OFFSET_M = 0.0008
# Taking a pick over, it centres the gripper this well before closing: the demonstration is "centre,
# then grip" (the expert's own tolerance, 1.5 mm, would often just close where the robot was).
CAREFUL_PICK_M = 0.0003


def fleet_websocket_url(http_base: str) -> str:
    scheme, _, rest = http_base.partition("://")
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest.rstrip('/')}/ws/fleet/"


class ScriptedSupervisor:
    def __init__(self, *, http_base: str, token: str, agent: Any, mode: str = "drive") -> None:
        self.http_base = http_base.rstrip("/")
        self.token = token
        self.robot_name = ""  # the server's name for the robot, from its welcome
        self.agent = agent  # robot (SimRobot), loop (ControlLoop), modes (ModeController), config
        self.period_s = 1.0 / (agent.control_hz * agent.config.time_scale)  # one command per control tick
        self.ids = itertools.count(1)
        self.pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.lease_id: str | None = None
        self.lease_ttl_s = 5.0
        self.arm: str | None = None
        self.goal_installed = 0
        self.goal_grasp = False  # a pick takeover: hand back once the nut is held
        self.takeover_started_t = 0.0
        self.episode: str | None = None  # the cycle it took over: it hands back when that cycle ends
        self.seq = 0
        self.takeovers = 0
        self.mode = mode  # drive: take over and install the nut; resume: acknowledge and let the policy go on

    async def run(self) -> None:
        while not self.agent.server_name:  # the robot's own link says who it is
            await asyncio.sleep(0.1)
        self.robot_name = self.agent.server_name
        delay = 0.5
        while True:
            try:
                async with connect(fleet_websocket_url(self.http_base), open_timeout=5, max_size=2**22,
                                   additional_headers={"Authorization": f"Bearer {self.token}", "Origin": self.http_base}) as ws:
                    delay = 0.5
                    reader = asyncio.create_task(self._read(ws))
                    try:
                        await ws.send(json.dumps({"type": "subscribe", "robots": [self.robot_name]}))
                        await self._supervise(ws)
                    finally:
                        reader.cancel()
            except (OSError, ConnectionClosed, InvalidHandshake, InvalidURI, TimeoutError) as error:
                log.warning("supervisor: fleet socket lost (%s); retrying in %.1f s", error, delay)
            self.lease_id = None
            for future in self.pending.values():
                future.cancel()
            self.pending.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _read(self, ws: ClientConnection) -> None:
        async for raw in ws:
            try:
                message = json.loads(raw)
            except ValueError:
                continue
            if message.get("type") == "result" and message.get("ref") in self.pending:
                future = self.pending.pop(message["ref"])
                if not future.done():
                    future.set_result(message)
            elif message.get("type") == "error" and message.get("ref") in self.pending:
                future = self.pending.pop(message["ref"])
                if not future.done():
                    future.set_result({**message, "ok": False})

    async def _request(self, ws: ClientConnection, message: dict[str, Any]) -> dict[str, Any]:
        request_id = f"sup-{next(self.ids)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        await ws.send(json.dumps({**message, "id": request_id}))
        try:
            return await asyncio.wait_for(future, CLAIM_TIMEOUT_S)
        finally:
            self.pending.pop(request_id, None)

    def _snapshot(self) -> NutStation | None:
        snapshot = getattr(self.agent.robot, "snapshot", None)
        return snapshot() if snapshot is not None else None

    async def _supervise(self, ws: ClientConnection) -> None:
        last_heartbeat = 0.0
        lease_asked_at = 0.0
        idle_hold_since: float | None = None
        while True:
            await asyncio.sleep(self.period_s)
            loop, modes = self.agent.loop, self.agent.modes
            if self.lease_id is None and loop.cycle is None and modes.mode == "hold":
                # Held between cycles (a lease that ended after its cycle): a person presses resume.
                idle_hold_since = idle_hold_since or time.monotonic()
                if time.monotonic() - idle_hold_since > 1.0:
                    reply = await self._request(ws, {"type": "resume", "robot": self.robot_name})
                    log.info("supervisor: resumed %s between cycles (%s)", self.robot_name, "ok" if reply.get("ok") else reply)
                    idle_hold_since = None
                continue
            idle_hold_since = None
            if self.lease_id is None:
                # A robot holding mid-cycle waits for a person: an intervention, or a lease that ended.
                if loop.cycle is not None and modes.mode == "hold":
                    if self.mode == "resume":
                        await self._acknowledge_and_resume(ws)
                        continue
                    await self._claim(ws)
                    lease_asked_at = last_heartbeat = time.monotonic()
                elif self.mode == "drive" and loop.cycle is not None and modes.mode == "autonomous":
                    inspect = getattr(self.agent.robot, "inspect", None)
                    side = inspect(pick_going_wrong) if inspect is not None else None
                    if side is not None:
                        await self._claim(ws, pick=side)
                        lease_asked_at = last_heartbeat = time.monotonic()
                continue
            now = time.monotonic()
            if modes.lease is None or modes.lease.id != self.lease_id:
                if now - lease_asked_at > LEASE_ARRIVAL_TIMEOUT_S:  # the robot never got it: give it back
                    await self._release(ws, "the robot never received the lease")
                continue
            station = self._snapshot()
            if station is None:
                await self._release(ws, "no ground truth to act on")
                continue
            if self._finished(station, loop):
                await self._release(ws, "done")
                continue
            if now - last_heartbeat > self.lease_ttl_s / 3:
                await ws.send(json.dumps({"type": "heartbeat", "id": f"sup-{next(self.ids)}", "robot": self.robot_name,
                                          "lease_id": self.lease_id}))
                last_heartbeat = now
            assert self.arm is not None
            command = Expert.teleop_command(station, self.arm, CAREFUL_PICK_M if self.goal_grasp else PICK_CLOSE_M)
            self.seq += 1
            await ws.send(json.dumps({
                "type": "teleop", "robot": self.robot_name, "lease_id": self.lease_id, "seq": self.seq, "arm": self.arm,
                "vx": command.vx, "vy": command.vy, "vz": command.vz, "spin": command.spin, "grip": command.grip,
                "sent_ms": time.time() * 1000.0,
            }))

    def _finished(self, station: NutStation, loop: Any) -> bool:
        if loop.cycle is None or loop.cycle.episode != self.episode or station.outcome.done:
            return True
        if self.arm is None:
            return True
        return takeover_done(station, self.arm, goal_installed=self.goal_installed, grasp=self.goal_grasp,
                             started_t=self.takeover_started_t)

    async def _claim(self, ws: ClientConnection, pick: str | None = None) -> None:
        """Take over the arm a pick is going wrong on (`pick`), else the one the robot is stuck on."""
        station = self._snapshot()
        if station is None:
            return
        arm = pick or choose_arm(station)
        if arm is None or self.agent.loop.cycle is None:
            return
        episode = self.agent.loop.cycle.episode
        reply = await self._request(ws, {"type": "claim", "robot": self.robot_name, "mode": "teleop"})
        if not reply.get("ok"):
            log.warning("supervisor: claim refused: %s", reply.get("message") or reply)
            await asyncio.sleep(1.0)
            return
        lease = reply.get("data", {}).get("lease") or {}
        self.lease_id, self.lease_ttl_s = lease.get("id"), float(lease.get("ttl_s") or 5.0)
        self.arm, self.goal_installed, self.goal_grasp = arm, min(station.arms[arm].installed + 1, 2), pick is not None
        self.takeover_started_t, self.seq = station.t, 0
        self.episode = episode
        self.takeovers += 1
        log.info("supervisor: took over %s (%s arm, %s)", self.robot_name, arm,
                 "a pick off the nut's centre" if pick else f"to nut {self.goal_installed}")

    async def _acknowledge_and_resume(self, ws: ClientConnection) -> None:
        """What a supervisor does with an alert that needs no hands: acknowledge it, let the policy go on."""
        await asyncio.sleep(RESUME_REACTION_S / self.agent.config.time_scale)
        for intervention in list(self.agent.loop.open_interventions):
            reply = await self._request(ws, {"type": "ack", "intervention": intervention})
            if not reply.get("ok"):
                log.info("supervisor: ack of %s refused: %s", intervention, reply.get("message") or reply)
        if self.agent.modes.mode != "hold" or self.agent.modes.lease is not None:
            return
        reply = await self._request(ws, {"type": "resume", "robot": self.robot_name})
        log.info("supervisor: resumed %s (%s)", self.robot_name, "ok" if reply.get("ok") else reply)

    async def _release(self, ws: ClientConnection, why: str) -> None:
        lease_id, self.lease_id = self.lease_id, None
        if lease_id is None:
            return
        reply = await self._request(ws, {"type": "release", "robot": self.robot_name, "lease_id": lease_id})
        log.info("supervisor: handed %s back (%s)%s", self.robot_name, why, "" if reply.get("ok") else f": {reply}")


def takeover_done(station: NutStation, side: str, *, goal_installed: int, grasp: bool, started_t: float) -> bool:
    """A takeover of one arm is over: a pick taken over once the nut is held, else once the arm has
    installed its next nut — or when it has gone on for MAX_TAKEOVER_S without getting there."""
    if station.t - started_t > MAX_TAKEOVER_S:
        return True
    arm = station.arms[side]
    if grasp:
        return arm.done or (arm.nut is not None and arm.grip >= 1.0)
    return arm.installed >= goal_installed


def choose_arm(station: NutStation) -> str | None:
    """A driver over its torque limit first (that is the fault the robot stopped for), else the arm
    that is furthest behind (a carried or threading nut first: that is where it got stuck)."""
    candidates = [side for side in ARMS if not station.arms[side].done]
    if not candidates:
        return None
    faulted = [side for side in candidates if station.arms[side].torque >= TORQUE_FAULT_NM]
    if faulted:
        return faulted[0]
    return min(candidates, key=lambda side: (station.arms[side].installed, station.arms[side].nut is None, ARMS.index(side)))


def pick_going_wrong(station: NutStation) -> str | None:
    """The arm coming down on its feeder nut off the nut's centre, if any (it would grip the nut by
    its edge). Closing has not begun: a takeover can still centre it."""
    for side in ARMS:
        arm = station.arms[side]
        nut = arm.feeder_nut
        if arm.done or arm.nut is not None or nut is None or nut.state != "feeder" or arm.grip_command > 0:
            continue
        low = arm.position[2] - NUT_ON_FEEDER_Z < PICK_WATCH_HEIGHT_M
        if low and float(np.hypot(*(arm.position[:2] - nut.position[:2]))) > PICK_WATCH_OFFSET_M:
            return side
    return None
