"""bench alert: a robot raises an intervention → a dashboard receives it, while ROBOTS robots send
10 Hz telemetry through the Redis channel layer at the same time.

Real parts: daphne with Postgres and channels_redis (a fresh database and channel prefix of its
own), real WebSocket clients speaking docs/protocol.md. The robots and the dashboard run in this
process on one event loop; one clock times send and receipt.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import websockets

from bench.common import finish, percentile
from webapp.launcher import Child, Launcher, daphne_args, free_port, manage_args, wait_port

ROOT = Path(__file__).resolve().parents[1]
ROBOTS = 50
ALERTS = 100
WARMUP_S = 3.0
PG = os.environ.get("FOREMAN_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("FOREMAN_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

SEED = """
import json
from webapp.fleet.services.demo import demo_seed
from webapp.fleet.services.users import api_token_issue
from django.contrib.auth import get_user_model
fleet = demo_seed(robots={robots}, password="bench-only")
print(json.dumps({{"robots": fleet.tokens, "dashboard": api_token_issue(user=get_user_model().objects.get(username="supervisor"))}}))
"""


class Stack:
    """A throwaway database + daphne on the Redis channel layer. Benches start their other
    processes (a Celery worker, agents) with `launcher`; close() stops them all."""

    def __init__(self, robots: int, servers: int = 1, extra_env: dict[str, str] | None = None) -> None:
        import psycopg

        self.name = f"foreman_bench_{os.getpid()}_{int(time.time())}"
        self.admin_url = PG.replace("postgres://", "postgresql://")
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        self.logs = Path(tempfile.mkdtemp(prefix="foreman-bench-"))
        self.env = {**os.environ, "DATABASE_URL": PG.rsplit("/", 1)[0] + "/" + self.name, "REDIS_URL": REDIS,
                    "FOREMAN_CHANNEL_PREFIX": self.name, "FOREMAN_LOG_LEVEL": "WARNING", "FOREMAN_MEDIA_ROOT": str(self.logs / "media"),
                    "PYTHONUNBUFFERED": "1", **(extra_env or {})}
        self.manage("migrate", "--verbosity", "0")
        self.tokens = json.loads(self.manage("shell", "-c", SEED.format(robots=robots)).strip().splitlines()[-1])
        self.launcher = Launcher(env=self.env, log_dir=self.logs)
        self.servers: list[tuple[Child, int]] = []
        for index in range(servers):
            port = free_port()
            self.servers.append((self.launcher.start(f"daphne{index}", daphne_args(port)), port))
        for child, port in self.servers:
            wait_port(port, timeout_s=30, child=child)

    def url(self, index: int = 0) -> str:
        return f"ws://127.0.0.1:{self.servers[index][1]}"

    def manage(self, *args: str) -> str:
        result = subprocess.run(manage_args(*args), cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            raise RuntimeError(result.stderr[-2000:])
        return result.stdout

    def close(self) -> None:
        import psycopg

        self.launcher.stop(timeout_s=15)
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        import redis

        client = redis.Redis.from_url(REDIS)  # the run's channel-layer and Celery keys share its prefix
        for key in client.scan_iter(match=f"{self.name}*", count=1000):
            client.delete(key)


def hello() -> dict[str, Any]:
    return {"type": "hello", "protocol": 1, "agent_version": "bench", "cameras": ["head"], "capabilities": [],
            "policy_version": "bc-sim-v1", "mode": "autonomous", "estopped": False, "lease_id": None}


def telemetry(t: float) -> dict[str, Any]:
    return {"type": "telemetry", "t": t, "mode": "autonomous", "phase": "nut 2/4: L drive, R align", "progress": 0.4,
            "cycle_index": 3, "confidence": 0.9, "takt_elapsed_s": 30.0, "takt_s": 76.0, "warning": None, "torque_nm": 2.0,
            "latency": {"inference_ms": 40.0, "loop_jitter_ms": 0.5, "command_ms": None}}


async def robot(url: str, token: str, stop: asyncio.Event, connected: list[int], alerts: asyncio.Queue[str],
                sent: dict[str, float]) -> None:
    """One robot: telemetry at 10 Hz and, when told, an intervention sent at once (timed at the send)."""
    ws = await websockets.connect(f"{url}/ws/robot/", additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10,
                                  max_queue=None)
    await ws.send(json.dumps(hello()))
    while json.loads(await ws.recv())["type"] != "welcome":
        pass
    connected[0] += 1

    async def drain() -> None:
        async for _ in ws:
            pass

    async def raise_alerts() -> None:
        while True:
            intervention = await alerts.get()
            sent[intervention] = time.perf_counter()
            await ws.send(json.dumps({"type": "intervention_raised", "intervention": intervention, "trigger": "policy_uncertainty",
                                      "severity": "high", "detail": "bench", "episode": None}))

    helpers = [asyncio.create_task(drain()), asyncio.create_task(raise_alerts())]
    await asyncio.sleep(random.random() * 0.1)
    t = 0.0
    try:
        while not stop.is_set():
            await ws.send(json.dumps(telemetry(t)))
            t += 0.1
            await asyncio.sleep(0.1)
    finally:
        for helper in helpers:
            helper.cancel()
        await ws.close()


async def measure() -> dict[str, Any]:
    stack = Stack(ROBOTS)
    try:
        url = stack.url()
        stop = asyncio.Event()
        connected = [0]
        names = list(stack.tokens["robots"])
        dashboard = await websockets.connect(f"{url}/ws/fleet/", open_timeout=10, max_queue=None,
                                             additional_headers={"Authorization": f"Bearer {stack.tokens['dashboard']}",
                                                                 "Origin": url.replace("ws://", "http://")})
        sent: dict[str, float] = {}
        received: dict[str, float] = {}
        batches = [0]

        async def listen() -> None:
            async for raw in dashboard:
                now = time.perf_counter()
                message = json.loads(raw)
                if message["type"] == "intervention":
                    received.setdefault(message["intervention"]["id"], now)
                elif message["type"] == "telemetry_batch":
                    batches[0] += 1

        listener = asyncio.create_task(listen())
        queues: dict[str, asyncio.Queue[str]] = {name: asyncio.Queue() for name in names}
        tasks = [asyncio.create_task(robot(url, stack.tokens["robots"][n], stop, connected, queues[n], sent)) for n in names]
        deadline = time.monotonic() + 60
        while connected[0] < ROBOTS:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {connected[0]} of {ROBOTS} robots connected")
            await asyncio.sleep(0.1)
        await asyncio.sleep(WARMUP_S)
        for _ in range(ALERTS):
            queues[random.choice(names)].put_nowait(str(uuid.uuid4()))
            await asyncio.sleep(0.2)
        await asyncio.sleep(2.0)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        listener.cancel()
        await dashboard.close()
        latencies = [(received[i] - sent[i]) * 1000 for i in sent if i in received]
        return {"latencies": latencies, "lost": len(sent) - len(latencies), "batches": batches[0]}
    finally:
        stack.close()


def run() -> dict[str, Any]:
    print(f"{ROBOTS} robots at 10 Hz + 1 dashboard on daphne/Redis/Postgres; {ALERTS} alerts…", flush=True)
    result = asyncio.run(measure())
    latencies = result["latencies"]
    metrics = {"robots": ROBOTS, "alerts": ALERTS, "p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95),
               "max_ms": percentile(latencies, 100), "lost": result["lost"], "telemetry_batches": result["batches"]}
    summary = [f"alert → dashboard with {ROBOTS} robots sending telemetry: p50 {metrics['p50_ms']} ms, p95 {metrics['p95_ms']} ms "
               f"(goal p95 ≤ 20), {result['lost']} lost"]
    return finish("alert", metrics, {"p95_ms": "≤ 20 at 50 robots"}, summary)
