"""The Celery application. Eager (in-process) without REDIS_URL; Redis broker with it."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("foreman")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
