"""Foreman benchmarks: `python -m bench NAME` (see docs/performance.md). Each prints a short human
summary and, as its last line, one JSON object {"bench": NAME, ...metrics..., "env": {...}}."""
