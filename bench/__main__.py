"""python -m bench NAME — NAME: control, export, alert, teleop, fleet, video, or all (runs each that is implemented)."""

from __future__ import annotations

import importlib
import sys

IMPLEMENTED = ["control", "export", "alert", "teleop", "fleet", "video"]
PLANNED = ["soak"]  # issue 6: not written yet — said, not faked


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] in {"-h", "--help"}:
        print(__doc__)
        print(f"implemented: {', '.join(IMPLEMENTED)}; not yet: {', '.join(PLANNED)}")
        return 0 if argv and argv[0] in {"-h", "--help"} else 2
    name = argv[0]
    names = IMPLEMENTED if name == "all" else [name]
    status = 0
    for bench in names:
        if bench in PLANNED:
            print(f"bench {bench}: not implemented yet (see docs/performance.md)", file=sys.stderr)
            status = 2
            continue
        if bench not in IMPLEMENTED:
            print(f"unknown bench {bench!r}; known: {', '.join(IMPLEMENTED + PLANNED)}", file=sys.stderr)
            return 2
        module = importlib.import_module(f"bench.{bench}")
        print(f"== bench {bench}", flush=True)
        module.run()
    if name == "all":
        print(f"not yet implemented: {', '.join(PLANNED)}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
