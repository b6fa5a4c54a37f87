"""webapp/launcher.py: children in their own process groups, bounded stops, logs to files."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from webapp.launcher import Launcher, LaunchError, free_port, wait_http, wait_port

# A parent that forks a child and ignores SIGTERM: only the group SIGKILL after the timeout ends both.
STUBBORN = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
if os.fork() == 0:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(60)
    sys.exit(0)
print("started", flush=True)
time.sleep(60)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}/stat").exists() else "X"
    return status not in ("Z", "X")


def test_stop_ends_the_whole_group_within_the_timeout_and_keeps_the_log(tmp_path: Path) -> None:
    launcher = Launcher(log_dir=tmp_path)
    child = launcher.start("stubborn", [sys.executable, "-c", STUBBORN])
    deadline = time.monotonic() + 10
    while "started" not in (child.log_tail() if child.log else ""):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    group = [int(p) for p in os.listdir("/proc") if p.isdigit() and _pgid(int(p)) == child.process.pid]
    assert len(group) == 2  # the leader and its fork
    started = time.monotonic()
    launcher.stop(timeout_s=1.0)
    assert time.monotonic() - started < 8
    assert not any(alive(pid) for pid in group)
    assert child.log == tmp_path / "stubborn.log" and child.log_tail() == "started"


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def test_waits_are_bounded_and_notice_a_child_that_exits(tmp_path: Path) -> None:
    launcher = Launcher(log_dir=tmp_path)
    dead = launcher.start("dead", [sys.executable, "-c", "print('bad settings'); raise SystemExit(2)"])
    with pytest.raises(LaunchError, match=r"dead exited with code 2; see .*dead.log"):
        wait_port(free_port(), timeout_s=30, child=dead)
    started = time.monotonic()
    with pytest.raises(LaunchError, match="did not answer"):
        wait_http(f"http://127.0.0.1:{free_port()}/", timeout_s=0.5)
    assert time.monotonic() - started < 5
    launcher.stop()
