from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.fleet.services.users import api_token_issue, api_token_revoke


class Command(BaseCommand):
    help = ("Issue a personal API token for a user (send it as 'Authorization: Bearer ...'; shown once), "
            "or revoke one with --revoke TOKEN.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", nargs="?", help="the user to issue a token for")
        parser.add_argument("--revoke", metavar="TOKEN", help="revoke this token instead (it stops working at once)")

    def handle(self, *args: object, username: str | None, revoke: str | None, **options: object) -> None:
        if revoke:
            if not api_token_revoke(token=revoke, actor="manage.py api_token"):
                raise CommandError("no such token, or it is already revoked")
            self.stdout.write("revoked")
            return
        if not username:
            raise CommandError("give a username (or --revoke TOKEN)")
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        self.stdout.write(api_token_issue(user=user))
