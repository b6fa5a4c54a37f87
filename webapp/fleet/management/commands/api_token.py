from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.fleet.services.users import api_token_issue


class Command(BaseCommand):
    help = "Issue a personal API token for a user (send it as 'Authorization: Bearer ...'). Shown once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")

    def handle(self, *args: object, username: str, **options: object) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        self.stdout.write(api_token_issue(user=user))
