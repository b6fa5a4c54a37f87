"""/healthz: is the database, the channel layer and Celery working? 200 if all are, else 503."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse


def _check_database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"ok": True, "vendor": connection.vendor}


async def _channel_roundtrip() -> None:
    layer = get_channel_layer()
    channel = await layer.new_channel("healthz.")
    await layer.send(channel, {"type": "healthz.ping"})
    message = await asyncio.wait_for(layer.receive(channel), timeout=2.0)
    if message.get("type") != "healthz.ping":
        raise RuntimeError("channel layer returned the wrong message")


def _check_channel_layer() -> dict[str, Any]:
    async_to_sync(_channel_roundtrip)()
    return {"ok": True, "backend": settings.CHANNEL_LAYERS["default"]["BACKEND"].rsplit(".", 1)[-1]}


def _check_celery() -> dict[str, Any]:
    from webapp.celery import app

    if app.conf.task_always_eager:
        return {"ok": True, "mode": "eager"}
    replies = app.control.ping(timeout=1.0)
    return {"ok": bool(replies), "mode": "broker", "workers": len(replies)}


def healthz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, Any] = {}
    for name, check in (("database", _check_database), ("channel_layer", _check_channel_layer), ("celery", _check_celery)):
        started = time.monotonic()
        try:
            checks[name] = check()
        except Exception as error:  # noqa: BLE001 - report, don't raise: this page exists to say what is broken
            checks[name] = {"ok": False, "error": f"{type(error).__name__}: {error}"[:300]}
        checks[name]["ms"] = round((time.monotonic() - started) * 1000, 1)
    ok = all(c["ok"] for c in checks.values())
    return JsonResponse({"ok": ok, "checks": checks}, status=200 if ok else 503)
