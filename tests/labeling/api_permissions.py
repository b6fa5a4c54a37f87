"""The labeling app's operations in the permission matrix (tests/fleet/test_api.py)."""

REQUIRED: dict[tuple[str, str], str | None] = {
    ("get", "/api/labeling/queue"): "episodes",
    ("get", "/api/labeling/episodes/{episode_id}"): "episodes",
    ("get", "/api/labeling/episodes/{episode_id}/media/{name}"): "episodes",
    ("post", "/api/labeling/episodes/{episode_id}/labels"): "label",
    ("post", "/api/labeling/labels/{label_id}/review"): "label",
    ("post", "/api/labeling/episodes/{episode_id}/assign"): "label",
    ("post", "/api/labeling/exports"): "label",
    ("get", "/api/labeling/exports"): "label",
    ("get", "/api/labeling/exports/{export_id}"): "label",
    ("get", "/api/labeling/exports/{export_id}/download"): "label",
}
