"""`python manage.py demo`: the whole product on one machine — server, workers and simulated robots."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.fleet.models import Robot
from webapp.fleet.services.demo import DEMO_USERS, demo_seed

DEMO_PASSWORD = "foreman"


class Command(BaseCommand):
    help = "Run the demo: migrate, create demo users and robots, start daphne, a Celery worker (with Redis) and simulated robots."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--robots", type=int, default=4, help="how many simulated robots (default 4)")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--host", default="127.0.0.1", help="address daphne binds (default 127.0.0.1)")
        parser.add_argument("--password", default=None, help="password for the demo users (required when DEBUG is off)")
        parser.add_argument("--time-scale", type=float, default=1.0, help="simulated robots run this much faster than real time")
        parser.add_argument("--no-agents", action="store_true", help="start the server only")
        parser.add_argument("--ice-loopback", action="store_true", default=True, help="robots offer only 127.0.0.1 ICE candidates (default on)")
        parser.add_argument("--no-ice-loopback", dest="ice_loopback", action="store_false",
                            help="robots offer all their ICE candidates (a demo viewed from another machine)")
        parser.add_argument("--exit-after", type=float, default=None, help=argparse_hidden())

    def handle(self, *args: Any, **options: Any) -> None:
        robots: int = options["robots"]
        if not 0 <= robots <= 64:
            raise CommandError("--robots must be between 0 and 64")
        password = options["password"]
        if password is None:
            if not settings.DEBUG:
                raise CommandError("DEBUG is off: refusing the well-known demo password; pass --password")
            password = DEMO_PASSWORD
        os.makedirs(settings.BASE_DIR / "var", exist_ok=True)
        call_command("migrate", interactive=False, verbosity=0)
        fleet = demo_seed(robots=robots, password=password)
        Robot.objects.update(online=False, connection="")  # nothing is connected before we start

        children: list[subprocess.Popen[bytes]] = []
        agents: dict[str, list[str]] = {}  # robot name -> its agent command line
        given_up: set[str] = set()
        env = dict(os.environ)
        python = sys.executable
        url = f"http://{options['host'] if options['host'] != '0.0.0.0' else '127.0.0.1'}:{options['port']}"

        def stop_all(*_: object) -> None:
            for child in reversed(children):
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 10
            for child in children:
                try:
                    child.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.kill()

        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        try:
            children.append(subprocess.Popen(
                [python, "-m", "daphne", "-b", options["host"], "-p", str(options["port"]), "webapp.asgi:application"],
                env=env,
            ))
            if settings.REDIS_URL:
                children.append(subprocess.Popen(
                    [python, "-m", "celery", "-A", "webapp", "worker", "-B", "--concurrency", "1", "--loglevel", "WARNING"],
                    env=env,
                ))
            start_agents = agents_available() and not options["no_agents"] and robots > 0
            if start_agents:
                self._wait_for_server(url)
                for index, (name, token) in enumerate(fleet.tokens.items(), start=1):
                    # Each robot gets its own stream of parts (seeds), so the fleet does not move in lockstep.
                    agent_args = [python, "-m", "robot_agent", "--server", url, "--token", token, "--sim",
                                  "--time-scale", str(options["time_scale"]), "--name", name, "--seed", str(10_000 * index),
                                  # Beside the media: a demo on another database never inherits this one's
                                  # e-stop latches or spooled episodes.
                                  "--state-dir", str(Path(settings.MEDIA_ROOT).parent / "agent" / name)]
                    if options["ice_loopback"]:
                        agent_args.append("--ice-loopback")
                    agents[name] = agent_args
                    children.append(subprocess.Popen(agent_args, env=env))

            self.stdout.write(self.style.SUCCESS(f"\nForeman demo running at {url}/"))
            self.stdout.write(f"  users: {', '.join(DEMO_USERS)}  (password: {password})")
            label = "simulated robots" if start_agents else "robots (no agents started)"
            self.stdout.write(f"  {label}: {', '.join(fleet.tokens) or 'none'}")
            self.stdout.write(f"  API: {url}/api/robots   health: {url}/healthz   Ctrl-C stops everything\n")
            started = time.monotonic()
            while True:
                time.sleep(0.5)
                if children[0].poll() is not None:
                    raise CommandError("daphne exited; see its output above")
                # A robot agent that dies is said out loud and restarted, as a service manager would —
                # except after a fatal refusal (exit code 2: bad token, bad settings), which would only repeat.
                for index, child in enumerate(children):
                    name = next((n for n, args in agents.items() if child.args == args), None)
                    if name is None or child.poll() is None or name in given_up:
                        continue
                    if child.returncode == 2:
                        self.stderr.write(f"robot agent {name} refused to start (exit code 2); not restarting it")
                        given_up.add(name)
                        continue
                    self.stderr.write(f"robot agent {name} exited with code {child.returncode}; restarting it")
                    children[index] = subprocess.Popen(agents[name], env=env)
                if options["exit_after"] is not None and time.monotonic() - started > options["exit_after"]:
                    break
        except KeyboardInterrupt:
            self.stdout.write("\nstopping…")
        finally:
            stop_all()
            self.stdout.write("demo stopped")

    def _wait_for_server(self, url: str) -> None:
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # 503 still means the server answers
            except OSError:
                time.sleep(0.3)
        raise CommandError("the server did not come up within 30 s")


def agents_available() -> bool:
    """`python -m robot_agent` can run here. Looked up, not imported: the server imports nothing
    from the agent (find_spec of a submodule would import its package)."""
    spec = importlib.util.find_spec("robot_agent")
    locations = spec.submodule_search_locations if spec is not None else None
    return any((Path(location) / "__main__.py").is_file() for location in locations or [])


def _raise_keyboard_interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS
