"""bench fleet: the largest robot count whose telemetry reaches every dashboard with end-to-end
p95 ≤ 150 ms and no alert lost — robots at 10 Hz, 10 dashboards, two daphne processes sharing one
Redis (and Postgres), robots and dashboards split across both.

The robots and dashboards are real WebSocket clients in this process (one clock): each telemetry
message carries its send time in `t`; a dashboard's receipt of that robot's entry in a
`telemetry_batch` gives the latency. At each level, 20 alerts are raised and every dashboard must
see every one. Levels rise until a level fails; ../shared/channels-capacity.md has the bare
stack's ceilings on this machine (300 robots, batched, with the load generator on the same cores).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from typing import Any

import websockets

from bench.alert import Stack, hello
from bench.common import finish, percentile

LEVELS = [50, 100, 150, 200, 250, 300, 400]
DASHBOARDS = 10
WARMUP_S = 4.0
WINDOW_S = 8.0
ALERTS_PER_LEVEL = 20
P95_LIMIT_MS = 150.0


def telemetry(t: float) -> str:
    return json.dumps({"type": "telemetry", "t": t, "mode": "autonomous", "phase": "nut 2/4: L drive, R align", "progress": 0.4,
                       "cycle_index": 3, "confidence": 0.9, "takt_elapsed_s": 30.0, "takt_s": 76.0, "warning": None,
                       "torque_nm": 2.0, "latency": {"inference_ms": 40.0, "loop_jitter_ms": 0.5, "command_ms": None}})


class Level:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.measuring = False
        self.alerts_sent: set[str] = set()
        self.alerts_seen: dict[str, int] = {}


async def run_robot(url: str, token: str, stop: asyncio.Event, level: Level, alerts: asyncio.Queue[str]) -> None:
    ws = await websockets.connect(f"{url}/ws/robot/", additional_headers={"Authorization": f"Bearer {token}"},
                                  open_timeout=30, max_queue=None)
    await ws.send(json.dumps(hello()))
    while json.loads(await ws.recv())["type"] != "welcome":
        pass

    async def drain() -> None:
        async for _ in ws:
            pass

    async def raise_alerts() -> None:
        while True:
            intervention = await alerts.get()
            level.alerts_sent.add(intervention)
            await ws.send(json.dumps({"type": "intervention_raised", "intervention": intervention, "trigger": "fault",
                                      "severity": "high", "detail": "bench", "episode": None}))

    helpers = [asyncio.create_task(drain()), asyncio.create_task(raise_alerts())]
    await asyncio.sleep(random.random() * 0.1)
    next_send = time.perf_counter()
    try:
        while not stop.is_set():
            await ws.send(telemetry(time.perf_counter()))
            next_send += 0.1
            await asyncio.sleep(max(0.0, next_send - time.perf_counter()))
    finally:
        for helper in helpers:
            helper.cancel()
        await ws.close()


async def run_dashboard(url: str, token: str, stop: asyncio.Event, level: Level) -> None:
    ws = await websockets.connect(f"{url}/ws/fleet/", open_timeout=30, max_queue=None,
                                  additional_headers={"Authorization": f"Bearer {token}", "Origin": url.replace("ws://", "http://")})
    try:
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=0.5)
            except TimeoutError:
                continue
            now = time.perf_counter()
            message = json.loads(raw)
            if message["type"] == "telemetry_batch" and level.measuring:
                level.latencies.extend((now - body["t"]) * 1000.0 for body in message["robots"].values())
            elif message["type"] == "intervention":
                key = message["intervention"]["id"]
                level.alerts_seen[key] = level.alerts_seen.get(key, 0) + 1
    finally:
        await ws.close()


async def one_level(stack: Stack, robots: int, dashboard_token: str) -> dict[str, Any]:
    level, stop = Level(), asyncio.Event()
    names = list(stack.tokens["robots"])[:robots]
    queues: dict[str, asyncio.Queue[str]] = {name: asyncio.Queue() for name in names}
    urls = [stack.url(0), stack.url(1)]
    dashboards = [asyncio.create_task(run_dashboard(urls[i % 2], dashboard_token, stop, level)) for i in range(DASHBOARDS)]
    robot_tasks = [asyncio.create_task(run_robot(urls[i % 2], stack.tokens["robots"][n], stop, level, queues[n])) for i, n in enumerate(names)]
    await asyncio.sleep(WARMUP_S)
    level.measuring = True
    for _ in range(ALERTS_PER_LEVEL):
        queues[random.choice(names)].put_nowait(str(uuid.uuid4()))
        await asyncio.sleep(WINDOW_S / ALERTS_PER_LEVEL)
    level.measuring = False
    await asyncio.sleep(1.5)  # late alerts still count as delivered
    stop.set()
    results = await asyncio.gather(*robot_tasks, *dashboards, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    lost = sum(1 for key in level.alerts_sent if level.alerts_seen.get(key, 0) < DASHBOARDS)
    return {"robots": robots, "p50_ms": percentile(level.latencies, 50), "p95_ms": percentile(level.latencies, 95),
            "samples": len(level.latencies), "alerts": len(level.alerts_sent), "alerts_lost": lost,
            "client_errors": len(failures), "expected_samples": int(robots * 10 * WINDOW_S * DASHBOARDS)}


async def measure() -> list[dict[str, Any]]:
    stack = Stack(max(LEVELS), servers=2)
    dashboard_token = stack.tokens["dashboard"]
    levels = []
    try:
        for robots in LEVELS:
            result = await one_level(stack, robots, dashboard_token)
            ok = result["p95_ms"] is not None and result["p95_ms"] <= P95_LIMIT_MS and result["alerts_lost"] == 0 and not result["client_errors"]
            result["ok"] = ok
            levels.append(result)
            print(f"  {robots:4d} robots: p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, "
                  f"{result['samples']}/{result['expected_samples']} updates, alerts lost {result['alerts_lost']}/{result['alerts']} "
                  f"→ {'ok' if ok else 'over the limit'}", flush=True)
            if not ok:
                break
            await asyncio.sleep(2.0)
    finally:
        stack.close()
    return levels


def run() -> dict[str, Any]:
    print(f"two daphnes on Redis, {DASHBOARDS} dashboards, robots at 10 Hz, levels {LEVELS}…", flush=True)
    levels = asyncio.run(measure())
    passing = [level for level in levels if level["ok"]]
    best = passing[-1] if passing else None
    metrics = {"max_robots": best["robots"] if best else 0, "p95_ms_at_max": best["p95_ms"] if best else None,
               "dashboards": DASHBOARDS, "servers": 2, "levels": levels}
    summary = [f"largest fleet with end-to-end p95 ≤ {P95_LIMIT_MS:.0f} ms and no alert lost: {metrics['max_robots']} robots "
               f"(p95 {metrics['p95_ms_at_max']} ms); goal ≥ 300"]
    return finish("fleet", metrics, {"max_robots": "≥ 300"}, summary)
