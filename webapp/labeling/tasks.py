"""Celery tasks for labeling: thin wrappers over services."""

from __future__ import annotations

from celery import shared_task

from webapp.labeling.services.processing import upload_process


@shared_task(name="labeling.process_upload", acks_late=True)
def process_upload(upload_id: str) -> str:
    """Check, describe and queue one uploaded episode; returns the upload's final state."""
    return upload_process(upload_id).state


@shared_task(name="labeling.run_export", acks_late=True)
def run_export(export_id: str) -> str:
    """Write one dataset export (LeRobot v3 or XR0) and zip it; returns its final state."""
    from webapp.labeling.services.exports import export_run

    return export_run(export_id).state
