"""bench soak: a time-accelerated shift of simulated robots on the production stack.

The seed trial ran 3 hours at a 76 s takt: 142 parts per station. Here ROBOTS simulated robots
(`python -m robot_agent --sim`, the shipped policy, sim time TIME_SCALE× faster) each work through
those parts against daphne + Postgres + the Redis channel layer + a Celery worker processing their
uploads. Each robot has a scripted supervisor in `resume` mode: when the robot asks for help it
acknowledges the alert and lets the policy go on, over /ws/fleet/ as a person would (a driving
supervisor would run at real time and could not fit a shift in minutes).

What is checked, from the raw events (each agent's own log of its cycles and interventions):
- every cycle the robots ran is an episode on the server with the same outcome, failure mode and
  intervention flag; every failed or intervened cycle's upload was processed (none lost);
- the KPIs the dashboard shows for the soak's window equal what those raw events say;
- memory: resident size of daphne, the Celery worker and each agent, after warm-up vs at the end.

Settings (environment): FOREMAN_SOAK_ROBOTS (4), FOREMAN_SOAK_HOURS (3), FOREMAN_SOAK_TIME_SCALE
(40), FOREMAN_SOAK_TIMEOUT_S (1500). `make soak` runs it; its result is bench/results/soak.json.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
import urllib.parse
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.alert import Stack
from bench.common import finish
from webapp.launcher import celery_args, sim_agent_args

TAKT_S = 76.0
ROBOTS = int(os.environ.get("FOREMAN_SOAK_ROBOTS", "4"))
SHIFT_HOURS = float(os.environ.get("FOREMAN_SOAK_HOURS", "3"))
TIME_SCALE = float(os.environ.get("FOREMAN_SOAK_TIME_SCALE", "40"))
TIMEOUT_S = float(os.environ.get("FOREMAN_SOAK_TIMEOUT_S", "1500"))
RECORD_FPS = 4.0  # recorded frames per wall second: a sped-up cycle still gets a few dozen frames
FIRST_SEED = 30_000  # neither training (< 1000), evaluation (1000…) nor learning-round seeds (2000…)
SAMPLE_S = 2.0

CYCLE_ENDED = re.compile(r"cycle (\d+) ended: (\w+)(?: \((\w+)\))?( after intervention)? in ([\d.]+) s")
INTERVENTION = re.compile(r"WARNING \S+ intervention (\w+): ")


def rss_mb(pid: int) -> float:
    """Resident size of a process and its children (a Celery worker forks its pool)."""
    total = 0.0
    pids = [pid, *children_of(pid)]
    for one in pids:
        try:
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            continue
    return total


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its live children."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for one in [pid, *children_of(pid)]:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
            found.extend(children_of(int(entry.name)))
    return found


def read_ledger(log: Path) -> dict[str, Any]:
    """What one agent says it did: its cycles (index → outcome, failure mode, intervened, seconds)
    and the interventions it raised (by trigger)."""
    cycles: dict[int, tuple[str, str, bool, float]] = {}
    triggers: Counter[str] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        if (match := CYCLE_ENDED.search(line)) is not None:
            index, outcome, mode, intervened, seconds = match.groups()
            cycles[int(index)] = (outcome, mode or "", bool(intervened), float(seconds))
        elif (match := INTERVENTION.search(line)) is not None:
            triggers[match.group(1)] += 1
    return {"cycles": cycles, "triggers": triggers}


class Memory:
    """RSS samples per process over the run, with the soak's progress (cycles done) at each sample."""

    def __init__(self, processes: dict[str, int], expected: int) -> None:
        self.processes = processes
        self.expected = expected
        self.started = time.monotonic()
        self.rows: list[tuple[float, int, dict[str, float]]] = []  # (wall s, cycles done, name → MB)
        self.cpu: dict[str, float] = {}  # name → CPU seconds at its last sample

    def sample(self, done: int) -> None:
        values = {name: value for name, pid in self.processes.items() if (value := rss_mb(pid)) > 0}
        self.rows.append((time.monotonic() - self.started, done, values))
        for name, pid in self.processes.items():
            if name in values:
                self.cpu[name] = cpu_s(pid)

    def growth(self) -> dict[str, dict[str, float]]:
        """Median RSS after warm-up (10–25% of the cycles done) against the median of the last 15%."""
        result = {}
        for name in self.processes:
            samples = [(done / self.expected, values[name]) for _, done, values in self.rows if name in values]
            warm = sorted(v for p, v in samples if 0.10 <= p <= 0.25)
            end = sorted(v for p, v in samples if p >= 0.85)
            if warm and end:
                base, last = warm[len(warm) // 2], end[len(end) // 2]
                result[name] = {"after_warmup_mb": round(base, 1), "at_end_mb": round(last, 1), "growth_mb": round(last - base, 1),
                                "peak_mb": round(max(v for _, v in samples), 1)}
        return result

    def timeline(self, points: int = 120) -> dict[str, Any]:
        """At most `points` evenly spaced samples, for the chart (python -m bench.report)."""
        step = max(1, len(self.rows) // points)
        rows = self.rows[::step]
        return {"t_s": [round(t, 1) for t, _, _ in rows], "cycles": [done for _, done, _ in rows],
                "rss_mb": {name: [round(values[name], 1) if name in values else None for _, _, values in rows]
                           for name in self.processes}}  # None: the process had exited


def api_get(url: str, token: str) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def server_records(stack: Stack, names: list[str], since: datetime) -> dict[str, Any]:
    """Episodes (robot, cycle index → outcome, failure mode, intervened), upload states, interventions."""
    import psycopg

    with psycopg.connect(stack.env["DATABASE_URL"].replace("postgres://", "postgresql://")) as conn:
        rows = conn.execute(
            "SELECT r.name, e.cycle_index, e.outcome, e.failure_mode, e.intervened, e.duration_s, u.state"
            " FROM fleet_episode e JOIN fleet_robot r ON r.id = e.robot_id LEFT JOIN fleet_episodeupload u ON u.episode_id = e.id"
            " WHERE r.name = ANY(%s) AND e.started_at >= %s", (names, since)).fetchall()
        triggers: dict[str, int] = dict(conn.execute(
            "SELECT i.trigger, count(*) FROM fleet_intervention i JOIN fleet_robot r ON r.id = i.robot_id"
            " WHERE r.name = ANY(%s) AND i.raised_at >= %s GROUP BY i.trigger", (names, since)).fetchall())
    episodes = {(name, index): (outcome, mode or "", intervened, duration, upload)
                for name, index, outcome, mode, intervened, duration, upload in rows}
    return {"episodes": episodes, "triggers": triggers}


def compare_kpis(kpis: dict[str, Any], ledgers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The dashboard's KPIs for the soak's window against the agents' own counts."""
    cycles = [c for ledger in ledgers.values() for c in ledger["cycles"].values()]
    ended = [c for c in cycles if c[0] in ("success", "failure")]
    raw = {
        "cycles": len(ended),
        "successes": sum(1 for c in ended if c[0] == "success"),
        "failures": sum(1 for c in ended if c[0] == "failure"),
        "aborted": sum(1 for c in cycles if c[0] == "aborted"),
        "interventions": sum(sum(ledger["triggers"].values()) for ledger in ledgers.values()),
        "robot_hours": round(sum(c[3] for c in cycles) / 3600, 3),
    }
    raw["success_rate"] = round(raw["successes"] / raw["cycles"], 4) if raw["cycles"] else None
    shown = {key: kpis["kpis"].get(key) for key in raw}
    # Robot hours: the agent's log rounds each cycle to 0.1 s; allow that much per cycle.
    tolerance = {"robot_hours": len(cycles) * 0.05 / 3600 + 0.001}
    differences = {key: {"raw": raw[key], "kpi": shown[key]} for key in raw
                   if shown[key] != raw[key] and not (key in tolerance and shown[key] is not None
                                                      and abs(shown[key] - raw[key]) <= tolerance[key])}
    by_robot_raw = {name: Counter(c[0] for c in ledger["cycles"].values() if c[0] in ("success", "failure"))
                    for name, ledger in ledgers.items()}
    for row in kpis.get("by_robot", []):
        counts = by_robot_raw.get(row["name"], Counter())
        if row["cycles"] != sum(counts.values()):
            differences[f"by_robot.{row['name']}.cycles"] = {"raw": sum(counts.values()), "kpi": row["cycles"]}
    return {"raw": raw, "kpi": shown, "differences": differences}


def run() -> dict[str, Any]:
    cycles_per_robot = round(SHIFT_HOURS * 3600 / TAKT_S)
    expected = ROBOTS * cycles_per_robot
    print(f"soak: {ROBOTS} sim robots × {cycles_per_robot} parts ({SHIFT_HOURS:g} h at a {TAKT_S:.0f} s takt), sim at "
          f"{TIME_SCALE:g}×, on daphne + Postgres + Redis + a Celery worker…", flush=True)
    started = time.monotonic()
    # Production settings (DEBUG off): with DEBUG on, Django keeps each connection's last 9000 queries.
    stack = Stack(ROBOTS, extra_env={"FOREMAN_DEBUG": "0", "FOREMAN_SECRET_KEY": secrets.token_urlsafe(32)})
    work = stack.logs
    names = sorted(stack.tokens["robots"])
    since = datetime.now(UTC)
    complete = False
    try:
        worker = stack.launcher.start("celery", celery_args())
        http = f"http://127.0.0.1:{stack.servers[0][1]}"
        agents = {name: stack.launcher.start(name, sim_agent_args(
            http, stack.tokens["robots"][name], name,
            "--seed", str(FIRST_SEED + 1000 * index), "--max-cycles", str(cycles_per_robot), "--time-scale", str(TIME_SCALE),
            "--record-fps", str(RECORD_FPS), "--ice-loopback", "--state-dir", str(work / name),
            "--sim-supervisor-token", stack.tokens["dashboard"], "--sim-supervisor-mode", "resume", "--log-level", "INFO",
        )).process for index, name in enumerate(names)}
        memory = Memory({"daphne": stack.servers[0][0].process.pid, "celery": worker.process.pid,
                         **{f"agent {n}": p.pid for n, p in agents.items()}}, expected)
        deadline = started + TIMEOUT_S
        last_print = 0.0
        done = 0
        while any(agent.poll() is None for agent in agents.values()) and time.monotonic() < deadline:
            time.sleep(SAMPLE_S)
            done = sum(len(read_ledger(work / f"{name}.log")["cycles"]) for name in names)
            memory.sample(done)
            if time.monotonic() - last_print > 15:
                last_print = time.monotonic()
                bar = "#" * int(30 * done / expected)
                print(f"  [{bar:<30}] {done}/{expected} cycles, {time.monotonic() - started:.0f} s", flush=True)
        agents_failed = {name: agent.returncode for name, agent in agents.items() if agent.poll() is not None and agent.returncode != 0}
        timed_out = any(agent.poll() is None for agent in agents.values())
        fleet_s = time.monotonic() - started
        ledgers = {name: read_ledger(work / f"{name}.log") for name in names}
        kept = {(name, index) for name, ledger in ledgers.items() for index, c in ledger["cycles"].items() if c[0] != "success" or c[2]}
        # The agents have uploaded their spools before exiting; wait for the worker to process them.
        while time.monotonic() < deadline:
            records = server_records(stack, names, since)
            waiting = [key for key in kept if (records["episodes"].get(key) or (None,) * 5)[4] not in ("ready", "rejected")]
            if not waiting or timed_out:
                break
            time.sleep(1.0)
        records = server_records(stack, names, since)
        kpis = api_get(f"{http}/api/dashboard/kpis?" + urllib.parse.urlencode({"start": since.isoformat(), "end": datetime.now(UTC).isoformat()}),
                       stack.tokens["dashboard"])
        complete = not timed_out and not agents_failed
    finally:
        stack.close()  # the agents, the worker, daphne, then the database

    ran = {(name, index): c for name, ledger in ledgers.items() for index, c in ledger["cycles"].items()}
    mismatched = sorted(f"{name}#{index}" for (name, index), c in ran.items()
                        if (e := records["episodes"].get((name, index))) is not None and (e[0], e[1], e[2]) != c[:3])
    recorded = sum(1 for key in ran if key in records["episodes"] and records["episodes"][key][0] != "running")
    uploads = Counter(records["episodes"][key][4] or "missing" for key in kept if key in records["episodes"])
    raised: Counter[str] = Counter()
    for ledger in ledgers.values():
        raised.update(ledger["triggers"])
    kpi_check = compare_kpis(kpis, ledgers)
    growth = memory.growth()
    metrics = {
        "robots": ROBOTS, "shift_hours": SHIFT_HOURS, "time_scale": TIME_SCALE, "complete": complete,
        "episodes_expected": expected, "episodes_ran": len(ran), "episodes_recorded": recorded,
        "episodes_lost": expected - recorded, "episodes_mismatched": mismatched[:20],
        "uploads_expected": len(kept), "uploads": dict(uploads), "uploads_lost": len(kept) - uploads.get("ready", 0) - uploads.get("rejected", 0),
        "interventions_raised": dict(raised), "interventions_on_server": records["triggers"],
        "kpis_equal_raw": not kpi_check["differences"], "kpi_check": kpi_check,
        "rss_growth_mb": max((g["growth_mb"] for g in growth.values()), default=None), "rss": growth,
        "outcomes": dict(Counter(c[0] if c[0] != "failure" else f"failure:{c[1]}" for c in ran.values())),
        "agents_failed": agents_failed, "fleet_s": round(fleet_s, 1), "wall_s": round(time.monotonic() - started, 1),
        "cpu_s": {name: round(value, 1) for name, value in memory.cpu.items()},
        "timeline": memory.timeline(),
    }
    summary = [
        f"{len(ran)}/{expected} cycles ran in {fleet_s:.0f} s of wall time ({'complete' if complete else 'NOT complete'}); "
        f"{recorded} recorded as episodes, {expected - recorded} lost, {len(mismatched)} disagree with the robot",
        f"uploads: {len(kept)} kept cycles → {dict(uploads)}",
        f"interventions: robots raised {sum(raised.values())}, server has {sum(records['triggers'].values())}",
        f"KPIs equal the raw events: {'yes' if not kpi_check['differences'] else 'NO ' + json.dumps(kpi_check['differences'])}",
        "RSS growth after warm-up: " + ", ".join(f"{name} {g['growth_mb']:+.1f} MB" for name, g in growth.items()),
        "CPU seconds: " + ", ".join(f"{name} {value:.0f}" for name, value in memory.cpu.items()),
    ]
    goals = {"wall_s": "≤ 600 for a 3-hour shift of 4 robots", "episodes_lost": "0", "rss_growth_mb": "flat (a few MB)",
             "kpis_equal_raw": "true"}
    result = finish("soak", metrics, goals, summary)
    return result
