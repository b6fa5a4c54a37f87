"""The learning app's operations in the permission matrix (tests/fleet/test_api.py)."""

REQUIRED: dict[tuple[str, str], str | None] = {
    ("get", "/api/learning/policies"): "view",
    ("post", "/api/learning/policies/{name}/rollout"): "rollout",
    ("post", "/api/learning/rollouts/{rollout_id}/promote"): "rollout",
    ("post", "/api/learning/rollouts/{rollout_id}/rollback"): "rollout",
    ("get", "/api/learning/rollouts/{rollout_id}"): "view",
    ("post", "/api/learning/retraining"): "rollout",
    ("get", "/api/learning/retraining"): "view",
    ("get", "/api/learning/retraining/{round_id}"): "view",
}
