"""Starting, waiting for and stopping the processes of a Foreman stack: daphne, a Celery worker and
simulated robot agents. `manage.py demo`, `manage.py learning_round` and the benchmarks (bench/)
all launch through here.

Each child runs in its own process group, so stopping it also stops what it forked (a Celery
worker's pool), and a Ctrl-C at the terminal reaches only the launching command, which then stops
its children in order. Every wait is bounded. The agent is started as `python -m robot_agent`, never
imported: the server imports nothing from the agent (tests/test_layout.py).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


class LaunchError(RuntimeError):
    """A child did not start, or exited while we waited for it."""


@dataclass
class Child:
    name: str
    args: list[str]
    process: subprocess.Popen[bytes]
    log: Path | None  # None: it writes to our own stdout/stderr

    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        if self.log is None or not self.log.is_file():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class Launcher:
    """The children of one command. `log_dir` None: they share our terminal (the demo); otherwise
    each writes `<log_dir>/<name>.log`."""

    def __init__(self, *, env: Mapping[str, str] | None = None, log_dir: Path | None = None, cwd: Path = ROOT) -> None:
        self.env = dict(os.environ if env is None else env)
        self.log_dir = log_dir
        self.cwd = cwd
        self.children: list[Child] = []
        self._handles: list[IO[bytes]] = []
        _interrupt_on_stop_signals()

    def start(self, name: str, args: Sequence[str]) -> Child:
        log = self.log_dir / f"{name}.log" if self.log_dir is not None else None
        output: IO[bytes] | None = None
        if log is not None:
            output = open(log, "ab")
            self._handles.append(output)
        process = subprocess.Popen(list(args), cwd=self.cwd, env=self.env, stdout=output,
                                   stderr=subprocess.STDOUT if output is not None else None, start_new_session=True)
        child = Child(name, list(args), process, log)
        self.children.append(child)
        return child

    def restart(self, child: Child) -> Child:
        """Start `child`'s command again in its place (it has exited)."""
        self.children.remove(child)
        return self.start(child.name, child.args)

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM every child's group, newest first; SIGKILL what is left after `timeout_s`."""
        for child in reversed(self.children):
            _signal_group(child.process, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for child in self.children:
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(child.process, signal.SIGKILL)
                child.process.wait(timeout=5)
            # The group may outlive its leader (a pool process): it goes too.
            _signal_group(child.process, signal.SIGKILL)
        for handle in self._handles:
            handle.close()
        self._handles.clear()

    def __enter__(self) -> Launcher:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def _interrupt_on_stop_signals() -> None:
    """SIGTERM and SIGINT raise KeyboardInterrupt in the launching command, whose `finally` (or
    `with`) then stops its children: they run in their own sessions and would outlive it. SIGINT is
    set too because a shell that starts a job in the background leaves it ignored, that survives
    exec, and Python then installs no Ctrl-C handler. Only the main thread may set handlers."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        signal.signal(signal.SIGINT, _raise_keyboard_interrupt)


def _raise_keyboard_interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(process.pid, sig)  # its own session: the group id is its pid
    except (ProcessLookupError, PermissionError):
        pass  # already gone


# ---------------------------------------------------------------- command lines


def daphne_args(port: int, host: str = "127.0.0.1") -> list[str]:
    return [PYTHON, "-m", "daphne", "-b", host, "-p", str(port), "webapp.asgi:application"]


def celery_args(*, beat: bool = False, loglevel: str = "WARNING") -> list[str]:
    return [PYTHON, "-m", "celery", "-A", "webapp", "worker", *(["-B"] if beat else []), "--concurrency", "1", "--loglevel", loglevel]


def sim_agent_args(server: str, token: str, name: str, *options: str) -> list[str]:
    """A simulated robot: the nut station (`python -m robot_agent --robot sim`), or another robot when
    `options` say `--robot DRIVER`; `options` are the agent's other flags."""
    robot = [] if "--robot" in options else ["--robot", "sim"]
    return [PYTHON, "-m", "robot_agent", "--server", server, "--token", token, *robot, "--name", name, *options]


def manage_args(*args: str) -> list[str]:
    return [PYTHON, str(ROOT / "manage.py"), *args]


def agents_available() -> bool:
    """`python -m robot_agent` can run here. Looked up, not imported (find_spec of a submodule
    would import its package)."""
    spec = importlib.util.find_spec("robot_agent")
    locations = spec.submodule_search_locations if spec is not None else None
    return any((Path(location) / "__main__.py").is_file() for location in locations or [])


# ---------------------------------------------------------------- readiness


def wait_http(url: str, *, timeout_s: float, child: Child | None = None, any_status: bool = True) -> None:
    """Until `url` answers HTTP — any status (a 503 from /healthz still means the server is up), or
    only 2xx when `any_status` is False. Raises LaunchError on timeout or if `child` exits."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            if any_status:
                return
        except OSError:
            pass
        _check_waiting(child, deadline, f"{url} did not answer within {timeout_s:.0f} s")
        time.sleep(0.3)


def wait_port(port: int, *, timeout_s: float, child: Child | None = None, host: str = "127.0.0.1") -> None:
    """Until something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            _check_waiting(child, deadline, f"nothing listens on {host}:{port} after {timeout_s:.0f} s")
            time.sleep(0.1)


def _check_waiting(child: Child | None, deadline: float, timeout_message: str) -> None:
    where = f"; see {child.log}" if child is not None and child.log is not None else ""
    if child is not None and not child.running():
        raise LaunchError(f"{child.name} exited with code {child.process.returncode}{where}")
    if time.monotonic() > deadline:
        raise LaunchError(timeout_message + where)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
