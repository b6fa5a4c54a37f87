"""Celery tasks for labeling: thin wrappers over services."""

from __future__ import annotations

from celery import shared_task

from webapp.labeling.services.processing import upload_process


@shared_task(name="labeling.process_upload", acks_late=True)
def process_upload(upload_id: str) -> str:
    """Check, describe and queue one uploaded episode; returns the upload's final state."""
    return upload_process(upload_id).state
