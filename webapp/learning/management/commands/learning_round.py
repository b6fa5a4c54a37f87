"""python manage.py learning_round --robots 4 --cycles N --report json

The whole learning loop on the simulated fleet, measured (issue 4, docs/learning.md):

1. Fleet: daphne and one `python -m robot_agent --sim` per robot, on fresh part seeds (2000 and
   up: neither training seeds, < 1000, nor evaluation seeds, 1000…), each with the scripted supervisor
   (foreman_sim/supervisor.py: the sim's expert acting as a remote teleoperator over /ws/fleet/ —
   claim, lease-bound teleop relayed by the server, heartbeat, hand back).
2. Every failed or intervened cycle is uploaded and processed (Celery) as in production.
3. Labels from the sim's ground truth: the failure mode the station ended with (none for a cycle
   the person saved), a second bot reviewer confirms.
4. Export to LeRobotDataset v3.0 (Celery), then a retraining round on it (Celery): fine-tune,
   evaluate before/after on held-out seeds, register the new PolicyVersion.

The last line printed is one JSON object: success_before, success_after, cycle_s_before,
cycle_s_after, episodes_used, interventions_used, eval_episodes, wall_s (+ details).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.fleet.models import Episode, EpisodeUpload, Robot, Station
from webapp.fleet.services.robots import robot_issue_token
from webapp.fleet.services.users import api_token_issue, api_token_revoke, user_create_with_role
from webapp.labeling.services.exports import export_create, export_run
from webapp.labeling.services.labels import label_review, label_submit
from webapp.launcher import Child, Launcher, LaunchError, celery_args, daphne_args, free_port, sim_agent_args, wait_http
from webapp.learning.models import RetrainingRound
from webapp.learning.services.policies import policy_register
from webapp.learning.services.retraining import retraining_run, retraining_start

BOTS = {"learning-supervisor": "operator", "learning-labeler": "labeler", "learning-reviewer": "labeler", "learning-engineer": "admin"}
FIRST_SEED = 2000


class Command(BaseCommand):
    help = "Run one measured learning round on the simulated fleet and print a JSON report as the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--robots", type=int, default=4, help="simulated robots (default 4)")
        parser.add_argument("--cycles", type=int, default=15, help="cycles each robot runs (default 15)")
        parser.add_argument("--report", choices=("json", "text"), default="json", help="json: the report as the last line (default)")
        parser.add_argument("--time-scale", type=float, default=8.0, help="sim time runs this many times faster (default 8)")
        parser.add_argument("--epochs", type=int, default=4, help="fine-tuning passes (default 4)")
        parser.add_argument("--eval-episodes", type=int, default=100, help="held-out seeds evaluated before and after (default 100)")
        parser.add_argument("--rehearsal-episodes", type=int, default=None,
                            help="expert demonstrations mixed in (default: the shipped policy's whole training set)")
        parser.add_argument("--control", action=argparse.BooleanOptionalAction, default=True,
                            help="also fine-tune on the rehearsal alone and report it as success_control (default on)")
        parser.add_argument("--timeout", type=float, default=900.0, help="give up after this many seconds (default 900)")
        parser.add_argument("--record-fps", type=float, default=4.0, help="recorded video frames per wall second (default 4)")

    def handle(self, *args: Any, **options: Any) -> None:
        robots, cycles = options["robots"], options["cycles"]
        if not 1 <= robots <= 16 or not 1 <= cycles <= 200:
            raise CommandError("--robots 1–16 and --cycles 1–200")
        started = time.monotonic()
        deadline = started + options["timeout"]
        call_command("migrate", interactive=False, verbosity=0)
        users, tokens, station = self._setup(robots)
        base = self._base_policy()
        run_tag = secrets.token_hex(3)
        names = list(tokens)
        Robot.objects.filter(name__in=names).update(online=False, connection="")
        work = Path(tempfile.mkdtemp(prefix="foreman-learning-"))
        failed = True
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        # Every child logs to a file in `work`: the tails are shown when the fleet fails.
        launcher = Launcher(env={**os.environ, "FOREMAN_LOG_LEVEL": os.environ.get("FOREMAN_LOG_LEVEL", "WARNING")}, log_dir=work)
        fleet_started = time.time()
        try:
            daphne = launcher.start("daphne", daphne_args(port))
            if not settings.CELERY_TASK_ALWAYS_EAGER:
                launcher.start("celery", celery_args())
            try:
                wait_http(f"{url}/healthz", timeout_s=max(1.0, min(30.0, deadline - time.monotonic())), child=daphne, any_status=False)
            except LaunchError as error:
                raise CommandError(f"the server at {url} did not start: {error}") from None
            agents = []
            for index, name in enumerate(names):
                agents.append(launcher.start(name, sim_agent_args(
                    url, tokens[name], name, "--policy", str(Path(settings.MEDIA_ROOT) / base.checkpoint),
                    "--seed", str(FIRST_SEED + 1000 * index), "--max-cycles", str(cycles), "--time-scale", str(options["time_scale"]),
                    "--record-fps", str(options["record_fps"]), "--ice-loopback", "--state-dir", str(work / name),
                    "--sim-supervisor-token", users["learning-supervisor-token"], "--log-level", "INFO",
                )))
            self._say(f"fleet: {robots} robots × {cycles} cycles at {options['time_scale']:g}× on {url} (policy {base.name})")
            since = datetime.fromtimestamp(fleet_started, tz=UTC)
            self._wait_for_agents(agents, names, robots * cycles, since, deadline)
            episodes = self._wait_for_uploads(names, since, deadline)
            failed = False
        finally:
            launcher.stop(timeout_s=10)
            # The supervisor bot's token was for this run only.
            api_token_revoke(token=users["learning-supervisor-token"], actor="learning_round")
            if failed:
                for child in launcher.children:
                    self._say(f"--- last lines of {child.name}'s log ---\n{child.log_tail()}")
            shutil.rmtree(work, ignore_errors=True)
        fleet_s = time.monotonic() - started
        outcomes = Counter(e.outcome if e.outcome != "failure" else f"failure:{e.failure_mode}" for e in episodes["all"])
        self._say(f"fleet done in {fleet_s:.0f} s: {dict(outcomes)}; {len(episodes['processed'])} episodes to label")

        labeled = self._label(episodes["processed"], users)
        if not labeled:
            raise CommandError("no episode to learn from: every cycle succeeded without help (run more cycles)")
        export = export_create(user=users["learning-labeler"], format="lerobot_v3", episode_ids=labeled,
                               source=f"learning_round {run_tag}")
        export = export_run(str(export.id))
        if export.state != "done":
            raise CommandError(f"export failed: {export.message}")
        self._say(f"exported {len(labeled)} episodes ({export.size / 1e6:.1f} MB)")
        round_ = retraining_start(user=users["learning-engineer"], export_id=str(export.id), base_policy=base.name,
                                  options={"epochs": options["epochs"], "eval_episodes": options["eval_episodes"],
                                           "rehearsal_episodes": options["rehearsal_episodes"], "control": int(options["control"])},
                                  source=f"learning_round {run_tag}")
        round_ = self._wait_for_round(round_, deadline)
        if round_.state != "done":
            raise CommandError(f"retraining failed: {round_.error}")
        report = {
            **{k: round_.report[k] for k in ("success_before", "success_after", "cycle_s_before", "cycle_s_after",
                                             "episodes_used", "interventions_used", "eval_episodes")},
            "wall_s": round(time.monotonic() - started, 1),
            "policy_before": round_.report["policy_before"], "policy_after": round_.report["policy_after"],
            "failure_modes_before": round_.report["failure_modes_before"], "failure_modes_after": round_.report["failure_modes_after"],
            "fleet": {"robots": robots, "cycles": len(episodes["all"]), "outcomes": dict(sorted(outcomes.items())),
                      "uploaded": len(episodes["processed"]), "fleet_s": round(fleet_s, 1)},
            **{k: round_.report[k] for k in ("success_control", "cycle_s_control", "failure_modes_control") if k in round_.report},
            "steps": round_.report["steps"], "episodes_skipped": len(round_.report.get("episodes_skipped", {})),
            "export": str(export.id), "retraining_round": str(round_.id), "retraining_s": round_.report.get("wall_s"),
        }
        if options["report"] == "text":
            self._say(json.dumps(report, indent=2))
        self.stdout.write(json.dumps(report))

    # ------------------------------------------------------------------ steps

    def _say(self, text: str) -> None:
        self.stderr.write(text)

    def _setup(self, robots: int) -> tuple[dict[str, Any], dict[str, str], Station]:
        from webapp.fleet.services.demo import station_seed

        station = station_seed()  # (not the demo users: their passwords stay as they are)
        users: dict[str, Any] = {}
        for username, role in BOTS.items():
            users[username] = user_create_with_role(username=username, password=secrets.token_urlsafe(16), role=role)
        users["learning-supervisor-token"] = api_token_issue(user=users["learning-supervisor"])
        tokens = {}
        for index in range(1, robots + 1):
            name = f"learn-{index}"
            Robot.objects.get_or_create(name=name, defaults={"station": station, "cameras": ["head", "wrist_left", "wrist_right"]})
            tokens[name] = robot_issue_token(robot_name=name, actor="learning_round")
        return users, tokens, station

    def _base_policy(self) -> Any:
        """The shipped sim policy, registered under its own version name if it is not yet."""
        from foreman_learning.policies.visuomotor import DEFAULT_WEIGHTS, load_visuomotor
        from webapp.fleet.models import PolicyVersion

        name = load_visuomotor(DEFAULT_WEIGHTS).version
        existing = PolicyVersion.objects.filter(name=name).first()
        if existing is not None and existing.checkpoint and (Path(settings.MEDIA_ROOT) / existing.checkpoint).is_file():
            return existing
        return policy_register(name=name, checkpoint=DEFAULT_WEIGHTS, notes="shipped with foreman_learning", actor="learning_round",
                               replace=True)

    def _wait_for_agents(self, agents: list[Child], names: list[str], total: int, since: datetime, deadline: float) -> None:
        last = -1
        while any(agent.running() for agent in agents):
            if time.monotonic() > deadline:
                raise CommandError("timed out while the fleet ran")
            done = Episode.objects.filter(robot__name__in=names, started_at__gte=since, ended_at__isnull=False).count()
            if done != last and done % max(1, total // 10) == 0:
                self._say(f"  {done}/{total} cycles")
            last = done
            time.sleep(0.5)
        failed = [agent.name for agent in agents if agent.process.returncode != 0]
        if failed:
            raise CommandError(f"agents of {', '.join(failed)} exited with an error")

    def _wait_for_uploads(self, names: list[str], since: datetime, deadline: float) -> dict[str, list[Episode]]:
        """Every kept cycle (failed or intervened) of this run, once its upload is processed."""
        while True:
            episodes = list(Episode.objects.filter(robot__name__in=names, started_at__gte=since).exclude(outcome=Episode.Outcome.RUNNING)
                            .select_related("robot").order_by("started_at"))
            kept = [e for e in episodes if e.outcome != Episode.Outcome.SUCCESS or e.intervened]
            uploads = {str(u.episode_id): u.state for u in EpisodeUpload.objects.filter(episode__in=kept)}
            waiting = [e for e in kept if uploads.get(str(e.id)) not in ("ready", "rejected")]
            if not waiting:
                break
            if time.monotonic() > deadline:
                raise CommandError(f"timed out waiting for {len(waiting)} uploads to be processed")
            time.sleep(0.5)
        processed = [e for e in kept if uploads.get(str(e.id)) == "ready"]
        return {"all": episodes, "processed": processed}

    def _label(self, episodes: list[Episode], users: dict[str, Any]) -> list[str]:
        """Ground-truth labels (the failure the station ended with; none when the person saved the cycle),
        confirmed by a second reviewer."""
        labeled = []
        for episode in episodes:
            mode = episode.failure_mode if episode.outcome == Episode.Outcome.FAILURE else ""
            label = label_submit(episode_id=str(episode.id), user=users["learning-labeler"], failure_mode=mode or "",
                                 failure_t=None, good_demo=episode.intervened or None,
                                 notes="ground truth from the simulated station", source="learning_round")
            label_review(label_id=str(label.id), user=users["learning-reviewer"], verdict="confirm", source="learning_round")
            labeled.append(str(episode.id))
        return labeled

    def _wait_for_round(self, round_: RetrainingRound, deadline: float) -> RetrainingRound:
        if settings.CELERY_TASK_ALWAYS_EAGER:
            round_.refresh_from_db()
            if round_.state == "queued":  # no commit hook ran (e.g. inside a transaction): do the worker's job
                retraining_run(str(round_.id))
        last = ""
        while True:
            round_.refresh_from_db()
            if round_.state in ("done", "failed"):
                return round_
            if round_.stage != last:
                last = round_.stage
                self._say(f"retraining: {round_.progress:.0%} {round_.stage}")
            if time.monotonic() > deadline:
                raise CommandError("timed out while retraining")
            time.sleep(0.5)
