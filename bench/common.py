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
