"""What every benchmark shares: percentiles, the environment block, and the JSON result."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from webapp.launcher import Launcher, LaunchError, free_port, manage_args, wait_http

RESULTS = Path(__file__).resolve().parent / "results"


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


def environment() -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).resolve().parents[1]).stdout.strip()
    except OSError:
        commit = ""
    return {
        "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
        "platform": platform.platform(terse=True), "commit": commit or None,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def finish(name: str, metrics: dict[str, Any], goals: dict[str, str], summary: list[str]) -> dict[str, Any]:
    """Print the summary, then the JSON line; keep the result in bench/results/NAME.json."""
    result = {"bench": name, **metrics, "goals": goals, "env": environment()}
    for line in summary:
        print(line)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    sys.stdout.flush()
    print(json.dumps(result))
    return result


def in_namespace() -> bool:
    return os.environ.get("FOREMAN_BENCH_NETNS") == "1"


def reexec_isolated(name: str) -> int:
    """Browser benches run inside a loopback-only network namespace (Chromium reaches out otherwise)."""
    import shutil

    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        raise SystemExit(f"bench {name} needs root, unshare and ip for a loopback-only network namespace")
    env = {**os.environ, "FOREMAN_BENCH_NETNS": "1"}
    command = f"ip link set lo up && exec {sys.executable} -m bench {name}"
    return subprocess.run(["unshare", "-n", "--", "sh", "-c", command], env=env, cwd=Path(__file__).resolve().parents[1]).returncode


def start_demo(work: Path, *args: str) -> tuple[Launcher, str, dict[str, str]]:
    """`manage.py demo` on embedded settings in `work` (its log: work/demo.log); returns (its
    launcher, url, env) once it answers."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(FOREMAN_SQLITE_PATH=str(work / "db.sqlite3"), FOREMAN_MEDIA_ROOT=str(work / "media"), FOREMAN_LOG_LEVEL="WARNING")
    launcher = Launcher(env=env, log_dir=work)
    demo = launcher.start("demo", manage_args("demo", "--port", str(port), *args))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/accounts/login/", timeout_s=60, child=demo, any_status=False)
    except LaunchError as error:
        launcher.stop()
        raise RuntimeError(f"the demo did not start: {error}") from None
    return launcher, url, env


def stop_demo(demo: Launcher) -> None:
    demo.stop(timeout_s=20)  # the demo stops its own children first (SIGTERM is its Ctrl-C)
