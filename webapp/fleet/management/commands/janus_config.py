"""Write a Janus configuration for Foreman's SFU from the server's settings (FOREMAN_SFU_TOKEN_SECRET,
FOREMAN_SFU_ADMIN_KEY): `manage.py janus_config --out /etc/janus-foreman`, then
`janus -F /etc/janus-foreman -C /etc/janus-foreman/janus.jcfg` and set FOREMAN_SFU_URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.fleet.janus_config import janus_config_files, write_janus_config


class Command(BaseCommand):
    help = "Write a Janus (VideoRoom + WebSockets) configuration matching this server's SFU settings."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", required=True, help="directory to write janus.jcfg and its plugin files into")
        parser.add_argument("--ws-port", type=int, default=8188, help="Janus's WebSocket API port (default 8188)")
        parser.add_argument("--ws-ip", default="127.0.0.1", help="address the WebSocket API binds (default 127.0.0.1)")
        parser.add_argument("--interfaces", default="lo", help="interfaces or address prefixes ICE gathers on (default lo)")
        parser.add_argument("--rtp-ports", default="20000-40000", help="UDP port range for media (default 20000-40000)")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.FOREMAN_SFU_TOKEN_SECRET or not settings.FOREMAN_SFU_ADMIN_KEY:
            raise CommandError("set FOREMAN_SFU_TOKEN_SECRET and FOREMAN_SFU_ADMIN_KEY first (the server and Janus share them)")
        try:
            low, high = (int(part) for part in options["rtp_ports"].split("-", 1))
        except ValueError:
            raise CommandError(f"--rtp-ports must be LOW-HIGH, not {options['rtp_ports']!r}") from None
        directory = Path(options["out"]).resolve()
        files = janus_config_files(directory, ws_port=options["ws_port"], token_secret=settings.FOREMAN_SFU_TOKEN_SECRET,
                                   admin_key=settings.FOREMAN_SFU_ADMIN_KEY, ws_ip=options["ws_ip"], interfaces=options["interfaces"],
                                   rtp_ports=(low, high))
        path = write_janus_config(directory, files)
        self.stdout.write(f"wrote {path}; run: janus -F {directory} -C {path}")
