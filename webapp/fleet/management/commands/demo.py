"""`python manage.py demo`: the whole product on one machine — server, workers and simulated robots."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.fleet.models import Robot
from webapp.fleet.services.demo import ALOHA_ROBOT, DEMO_USERS, demo_seed
from webapp.launcher import Child, Launcher, LaunchError, agents_available, celery_args, daphne_args, sim_agent_args, wait_http

DEMO_PASSWORD = "foreman"


class Command(BaseCommand):
    help = "Run the demo: migrate, create demo users and robots, start daphne, a Celery worker (with Redis) and simulated robots."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--robots", type=int, default=4, help="how many simulated robots (default 4)")
        parser.add_argument("--aloha", type=int, default=0, help="how many simulated ALOHA robots (MuJoCo) at the insertion station (default 0)")
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
        aloha: int = options["aloha"]
        if not 0 <= robots <= 64:
            raise CommandError("--robots must be between 0 and 64")
        if not 0 <= aloha <= 8:
            raise CommandError("--aloha must be between 0 and 8")
        password = options["password"]
        if password is None:
            if not settings.DEBUG:
                raise CommandError("DEBUG is off: refusing the well-known demo password; pass --password")
            password = DEMO_PASSWORD
        os.makedirs(settings.BASE_DIR / "var", exist_ok=True)
        call_command("migrate", interactive=False, verbosity=0)
        fleet = demo_seed(robots=robots, password=password, aloha=aloha)
        Robot.objects.update(online=False, connection="")  # nothing is connected before we start

        launcher = Launcher()  # the children share our terminal; SIGTERM and Ctrl-C stop them (finally)
        agents: list[Child] = []
        given_up: set[str] = set()
        url = f"http://{options['host'] if options['host'] != '0.0.0.0' else '127.0.0.1'}:{options['port']}"

        try:
            daphne = launcher.start("daphne", daphne_args(options["port"], options["host"]))
            if settings.REDIS_URL:
                launcher.start("celery", celery_args(beat=True))
            start_agents = agents_available() and not options["no_agents"] and robots + aloha > 0
            if start_agents:
                try:
                    wait_http(f"{url}/healthz", timeout_s=30, child=daphne)
                except LaunchError as error:
                    raise CommandError(f"the server did not come up: {error}") from None
                for index, (name, token) in enumerate(fleet.tokens.items(), start=1):
                    # Each robot gets its own stream of parts (seeds), so the fleet does not move in lockstep.
                    agent_options = ["--time-scale", str(options["time_scale"]), "--seed", str(10_000 * index),
                                     # Beside the media: a demo on another database never inherits this one's
                                     # e-stop latches or spooled episodes.
                                     "--state-dir", str(Path(settings.MEDIA_ROOT).parent / "agent" / name)]
                    if options["ice_loopback"]:
                        agent_options.append("--ice-loopback")
                    if name in fleet.aloha:
                        agent_options += ["--robot", ALOHA_ROBOT]
                    agents.append(launcher.start(f"agent {name}", sim_agent_args(url, token, name, *agent_options)))

            self.stdout.write(self.style.SUCCESS(f"\nForeman demo running at {url}/"))
            self.stdout.write(f"  users: {', '.join(DEMO_USERS)}  (password: {password})")
            label = "simulated robots" if start_agents else "robots (no agents started)"
            self.stdout.write(f"  {label}: {', '.join(fleet.tokens) or 'none'}")
            self.stdout.write(f"  API: {url}/api/robots   health: {url}/healthz   Ctrl-C stops everything\n")
            started = time.monotonic()
            while True:
                time.sleep(0.5)
                if not daphne.running():
                    raise CommandError("daphne exited; see its output above")
                # A robot agent that dies is said out loud and restarted, as a service manager would —
                # except after a fatal refusal (exit code 2: bad token, bad settings), which would only repeat.
                for index, agent in enumerate(agents):
                    if agent.running() or agent.name in given_up:
                        continue
                    if agent.process.returncode == 2:
                        self.stderr.write(f"robot {agent.name} refused to start (exit code 2); not restarting it")
                        given_up.add(agent.name)
                        continue
                    self.stderr.write(f"robot {agent.name} exited with code {agent.process.returncode}; restarting it")
                    agents[index] = launcher.restart(agent)
                if options["exit_after"] is not None and time.monotonic() - started > options["exit_after"]:
                    break
        except KeyboardInterrupt:
            self.stdout.write("\nstopping…")
        finally:
            launcher.stop(timeout_s=10)
            self.stdout.write("demo stopped")


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS
