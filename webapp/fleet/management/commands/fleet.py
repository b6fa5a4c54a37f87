"""manage.py fleet: the fleet's layout from the command line, through the same services as the
dashboard's Fleet setup page and /api/fleet/ (every change audited, actor manage.py).

    manage.py fleet list
    manage.py fleet site add|rename|retire ...
    manage.py fleet line add SITE NAME | rename SITE NAME NEW | retire SITE NAME
    manage.py fleet station add SITE LINE NAME --task TEXT --takt SECONDS | edit NAME [...] | retire NAME
    manage.py fleet robot add NAME [--station S] | assign NAME (STATION | --none) | retire NAME
Tokens: manage.py robot_token NAME (issue or rotate), manage.py robot_token --revoke NAME.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.fleet.selectors import fleet_layout
from webapp.fleet.services import administration as admin
from webapp.fleet.services.errors import ServiceError

ACTOR = "manage.py"


class Command(BaseCommand):
    help = "List and change sites, lines, stations and robots (audited). `manage.py fleet list` shows the layout."

    def add_arguments(self, parser: CommandParser) -> None:
        kinds = parser.add_subparsers(dest="kind", required=True, parser_class=type(parser))
        kinds.add_parser("list", help="every site, line, station and robot")

        site = kinds.add_parser("site").add_subparsers(dest="action", required=True)
        site.add_parser("add").add_argument("name")
        rename = site.add_parser("rename")
        rename.add_argument("name")
        rename.add_argument("new_name")
        site.add_parser("retire").add_argument("name")

        line = kinds.add_parser("line").add_subparsers(dest="action", required=True)
        for action in ("add", "rename", "retire"):
            sub = line.add_parser(action)
            sub.add_argument("site")
            sub.add_argument("name")
            if action == "rename":
                sub.add_argument("new_name")

        station = kinds.add_parser("station").add_subparsers(dest="action", required=True)
        add = station.add_parser("add")
        add.add_argument("site")
        add.add_argument("line")
        add.add_argument("name")
        add.add_argument("--task", required=True, help="what the station does, for people")
        add.add_argument("--takt", type=float, required=True, help="its takt in seconds")
        edit = station.add_parser("edit")
        edit.add_argument("name")
        edit.add_argument("--name", dest="new_name")
        edit.add_argument("--task")
        edit.add_argument("--takt", type=float)
        edit.add_argument("--site", help="with --line: move it to that line")
        edit.add_argument("--line")
        station.add_parser("retire").add_argument("name")

        robot = kinds.add_parser("robot").add_subparsers(dest="action", required=True)
        add_robot = robot.add_parser("add", help="a new robot; prints its token once")
        add_robot.add_argument("name")
        add_robot.add_argument("--station")
        assign = robot.add_parser("assign")
        assign.add_argument("name")
        where = assign.add_mutually_exclusive_group(required=True)
        where.add_argument("station", nargs="?")
        where.add_argument("--none", action="store_true", help="on no station")
        robot.add_parser("retire").add_argument("name")

    def handle(self, *args: Any, **options: Any) -> None:
        kind, action = options["kind"], options.get("action")
        try:
            if kind == "list":
                self._list()
                return
            self.stdout.write(self._change(kind, action, options))
        except ServiceError as error:
            raise CommandError(error.message) from None

    def _change(self, kind: str, action: str | None, o: dict[str, Any]) -> str:
        who = {"actor": ACTOR}
        match kind, action:
            case "site", "add":
                return f"site {admin.site_create(name=o['name'], **who).name} created"
            case "site", "rename":
                return f"site {o['name']} is now {admin.site_rename(name=o['name'], new_name=o['new_name'], **who).name}"
            case "site", "retire":
                return f"site {admin.site_retire(name=o['name'], **who).name} retired"
            case "line", "add":
                return f"line {admin.line_create(site=o['site'], name=o['name'], **who).name} created at {o['site']}"
            case "line", "rename":
                return f"line {o['name']} is now {admin.line_rename(site=o['site'], name=o['name'], new_name=o['new_name'], **who).name}"
            case "line", "retire":
                return f"line {admin.line_retire(site=o['site'], name=o['name'], **who).name} retired"
            case "station", "add":
                station = admin.station_create(site=o["site"], line=o["line"], name=o["name"], task=o["task"], takt_s=o["takt"], **who)
                return f"station {station.name} created ({station.takt_s:g} s takt)"
            case "station", "edit":
                station = admin.station_update(name=o["name"], new_name=o["new_name"], task=o["task"], takt_s=o["takt"],
                                               site=o["site"], line=o["line"], **who)
                return f"station {station.name} saved"
            case "station", "retire":
                return f"station {admin.station_retire(name=o['name'], **who).name} retired"
            case "robot", "add":
                robot, token = admin.robot_create(name=o["name"], station=o["station"], **who)
                place = f" on {o['station']}" if o["station"] else ""
                self.stderr.write(f"robot {robot.name} created{place}; its token (shown once):")
                return token
            case "robot", "assign":
                robot = admin.robot_assign(name=o["name"], station=None if o["none"] else o["station"], **who)
                return f"{robot.name} is on {robot.station.name if robot.station else 'no station'}"
            case "robot", "retire":
                return f"robot {admin.robot_retire(name=o['name'], **who).name} retired"
        raise CommandError(f"unknown: {kind} {action}")

    def _list(self) -> None:
        layout = fleet_layout()
        for site in layout["sites"]:
            self.stdout.write(site["name"])
            for line in site["lines"]:
                self.stdout.write(f"  {line['name']}")
                for station in line["stations"]:
                    self.stdout.write(f"    {station['name']} ({station['takt_s']:g} s takt): {station['task']}")
                    for robot in station["robots"]:
                        self.stdout.write(f"      {_robot_line(robot)}")
        if layout["unassigned"]:
            self.stdout.write("on no station")
            for robot in layout["unassigned"]:
                self.stdout.write(f"  {_robot_line(robot)}")


def _robot_line(robot: dict[str, Any]) -> str:
    token = f"token {robot['token_prefix']}…" if robot["token_prefix"] else "no token"
    return f"{robot['name']}  {'online' if robot['online'] else 'offline'}  {token}"
