"""The labeling app's operations in the permission matrix (tests/fleet/test_api.py)."""

REQUIRED: dict[tuple[str, str], str | None] = {}
