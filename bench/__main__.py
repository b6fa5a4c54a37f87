"""python -m bench NAME — NAME: control, export, alert, teleop, fleet, video, all (those six), or soak (a sped-up
3-hour shift of 4 sim robots, about 7 minutes on 2 cores; `make soak`)."""

from __future__ import annotations

import importlib
import sys

IMPLEMENTED = ["control", "export", "alert", "teleop", "fleet", "video"]
SEPARATE = ["soak"]  # long: `make soak`, not part of `make bench`


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] in {"-h", "--help"}:
        print(__doc__)
        print(f"in `all`: {', '.join(IMPLEMENTED)}; run on their own: {', '.join(SEPARATE)}")
        return 0 if argv and argv[0] in {"-h", "--help"} else 2
    name = argv[0]
    names = IMPLEMENTED if name == "all" else [name]
    for bench in names:
        if bench not in IMPLEMENTED + SEPARATE:
            print(f"unknown bench {bench!r}; known: {', '.join(IMPLEMENTED + SEPARATE)}", file=sys.stderr)
            return 2
        module = importlib.import_module(f"bench.{bench}")
        print(f"== bench {bench}", flush=True)
        module.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
