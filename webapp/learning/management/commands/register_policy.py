"""python manage.py register_policy NAME PATH [--parent P] [--notes TEXT] [--replace]

Registers a policy an ML engineer trained elsewhere, so the Policies page can roll it out: PATH is
a Foreman visuomotor or TorchScript checkpoint file, or a LeRobot checkpoint directory
(`lerobot-train`'s OUTPUT/checkpoints/last/pretrained_model), stored zipped. Audited.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.fleet.services.errors import ServiceError
from webapp.learning.services.policies import policy_register


class Command(BaseCommand):
    help = "Register a trained policy (a checkpoint file, or a LeRobot checkpoint directory) as a policy version"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="the version's name, as robots report it (letters, digits, . _ -)")
        parser.add_argument("path", type=Path)
        parser.add_argument("--parent", default=None, help="the version it was trained from")
        parser.add_argument("--notes", default="")
        parser.add_argument("--replace", action="store_true", help="replace a version of this name")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            policy = policy_register(name=options["name"], checkpoint=options["path"], parent=options["parent"], notes=options["notes"],
                                     actor="manage.py", replace=options["replace"])
        except ServiceError as error:
            raise CommandError(error.message) from None
        self.stdout.write(f"registered {policy.name} ({policy.checkpoint}, sha256 {policy.sha256[:12]}…)")
