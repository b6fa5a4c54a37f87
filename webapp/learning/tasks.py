"""Celery tasks for learning: thin wrappers over services."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="learning.run_retraining", acks_late=True)
def run_retraining(round_id: str) -> str:
    """Fine-tune, evaluate and register one retraining round; returns its final state."""
    from webapp.learning.services.retraining import retraining_run

    return retraining_run(round_id).state
