"""Celery tasks: thin wrappers over services."""

from celery import shared_task

from webapp.fleet.services.custody import leases_expire_stale


@shared_task(name="fleet.expire_stale_leases")
def expire_stale_leases() -> int:
    """Backstop for leases whose robot socket (and its own timer) went away."""
    return leases_expire_stale()


@shared_task(name="fleet.ping")
def ping() -> str:
    return "pong"
