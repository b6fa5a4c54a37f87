"""python -m bench.report: draw docs/performance.svg from bench/results/*.json — each measurement as
a bar against its goal (the goal line at 100%), so a glance says which are met."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
OUT = ROOT / "docs" / "performance.svg"

# bench, metric, goal, lower is better, label
ROWS = [
    ("control", "jitter_p99_ms", 5.0, True, "control jitter p99 (ms)"),
    ("control", "async_faster_pct", 25.0, False, "async vs sync cycle (% faster)"),
    ("export", "seconds_per_hour", 60.0, True, "export s per hour of 30 fps data"),
    ("alert", "p95_ms", 20.0, True, "alert p95 at 50 robots (ms)"),
    ("fleet", "max_robots", 300.0, False, "fleet: robots at p95 ≤ 150 ms"),
    ("video", "g2g_p50_ms", 45.0, True, "video glass-to-glass p50 (ms)"),
    ("video", "g2g_p95_ms", 70.0, True, "video glass-to-glass p95 (ms)"),
    ("video", "cpu_pct_per_stream", 20.0, True, "agent CPU per video stream (%)"),
    ("teleop", "datachannel_p95_ms", 10.0, True, "teleop p95, data channel (ms)"),
    ("teleop", "websocket_p95_ms", 10.0, True, "teleop p95, WebSocket fallback (ms)"),
]


def main() -> None:
    rows = []
    for bench, metric, goal, lower, label in ROWS:
        path = RESULTS / f"{bench}.json"
        if not path.is_file():
            continue
        value = json.loads(path.read_text()).get(metric)
        if value is None:
            continue
        ratio = value / goal
        met = ratio <= 1 if lower else ratio >= 1
        rows.append((label, value, goal, ratio, met, lower))
    width, bar_left, bar_width, row_h = 880, 270, 400, 34
    height = 50 + row_h * len(rows) + 30
    scale = bar_width / max([2.0, *[r[3] for r in rows]])
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="system-ui, sans-serif" font-size="13">',
             f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
             '<text x="12" y="24" font-size="15" font-weight="600">Foreman benchmarks: measured / goal (goal = dashed line)</text>']
    for index, (label, value, goal, ratio, met, lower) in enumerate(rows):
        y = 44 + index * row_h
        color = "#2f9e5b" if met else "#d64545"
        parts.append(f'<text x="12" y="{y + 17}">{label}</text>')
        parts.append(f'<rect x="{bar_left}" y="{y + 4}" width="{max(2.0, ratio * scale):.1f}" height="18" fill="{color}"/>')
        verdict = "met" if met else "not met"
        parts.append(f'<text x="{bar_left + max(2.0, ratio * scale) + 6:.1f}" y="{y + 17}">{value:g} (goal {"≤" if lower else "≥"} {goal:g}, {verdict})</text>')
    goal_x = bar_left + scale
    parts.append(f'<line x1="{goal_x:.1f}" y1="36" x2="{goal_x:.1f}" y2="{height - 20}" stroke="#333" stroke-dasharray="5 4"/>')
    parts.append(f'<text x="{goal_x - 14:.1f}" y="{height - 6}">goal</text>')
    parts.append("</svg>")
    OUT.write_text("\n".join(parts) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)} ({len(rows)} measurements)")


if __name__ == "__main__":
    main()
