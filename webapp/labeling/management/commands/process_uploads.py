"""`python manage.py process_uploads`: process every upload still waiting (e.g. after a broker outage)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from webapp.fleet.models import EpisodeUpload
from webapp.labeling.services.processing import upload_process


class Command(BaseCommand):
    help = "Process uploads that are still 'received' or stuck in 'processing'."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=int, default=1000)

    def handle(self, *args: object, limit: int, **options: object) -> None:
        waiting = EpisodeUpload.objects.filter(state__in=[EpisodeUpload.State.RECEIVED, EpisodeUpload.State.PROCESSING])
        counts: dict[str, int] = {}
        for upload_id in list(waiting.order_by("received_at").values_list("id", flat=True)[:limit]):
            EpisodeUpload.objects.filter(pk=upload_id, state=EpisodeUpload.State.PROCESSING).update(state=EpisodeUpload.State.RECEIVED)
            state = upload_process(str(upload_id)).state
            counts[state] = counts.get(state, 0) + 1
        self.stdout.write(", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "nothing to process")
