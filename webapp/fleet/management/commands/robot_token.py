from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.fleet.services.administration import robot_revoke_token, robot_rotate_token
from webapp.fleet.services.errors import ServiceError


class Command(BaseCommand):
    help = ("Issue a new token for a robot (the old one stops working). The token is shown once. "
            "--revoke: take its token away (it cannot connect until a new one is issued).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="the robot's name")
        parser.add_argument("--revoke", action="store_true", help="revoke the robot's token instead of issuing one")

    def handle(self, *args: object, name: str, revoke: bool = False, **options: object) -> None:
        try:
            if revoke:
                robot_revoke_token(name=name, actor="manage.py")
                self.stdout.write(f"{name}'s token revoked")
                return
            token = robot_rotate_token(name=name, actor="manage.py")
        except ServiceError as error:
            raise CommandError(error.message) from None
        self.stdout.write(token)
