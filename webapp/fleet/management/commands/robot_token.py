from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.fleet.services.errors import NotFound
from webapp.fleet.services.robots import robot_issue_token


class Command(BaseCommand):
    help = "Issue a new token for a robot (the old one stops working). The token is shown once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="the robot's name")

    def handle(self, *args: object, name: str, **options: object) -> None:
        try:
            token = robot_issue_token(robot_name=name, actor="manage.py")
        except NotFound as error:
            raise CommandError(error.message) from None
        self.stdout.write(token)
