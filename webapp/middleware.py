"""Request hygiene shared by every page and the API."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse


def reject_nul_characters(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    """A NUL character in the query string, the path or a JSON body is refused up front: PostgreSQL
    cannot store or compare text containing one, so a filter like `?robot=%00` or a name "\\u0000"
    would otherwise end as a database error (500). The API answers 422 with its usual error body;
    pages answer 400. (Binary uploads are multipart, not JSON: their bytes are not looked at.)"""

    def middleware(request: HttpRequest) -> HttpResponse:
        message = ""
        if any("\x00" in key or any("\x00" in value for value in values) for key, values in request.GET.lists()):
            message = "the query string contains a NUL character"
        elif "\x00" in request.path:
            message = "the path contains a NUL character"
        elif request.content_type == "application/json" and _json_has_nul(request.body):
            message = "the JSON body contains a NUL character"
        if message:
            if request.path.startswith("/api/"):
                return JsonResponse({"detail": message}, status=422)
            return HttpResponseBadRequest(message)
        return get_response(request)

    return middleware


def _json_has_nul(body: bytes) -> bool:
    """Whether a JSON document holds a NUL in any string (only parsed when its escape appears)."""
    if b"\x00" in body:
        return True
    if b"\\u0000" not in body:
        return False
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return False  # not JSON (or absurdly nested): the view says so

    def walk(value: Any) -> bool:
        if isinstance(value, str):
            return "\x00" in value
        if isinstance(value, dict):
            return any(walk(k) or walk(v) for k, v in value.items())
        if isinstance(value, list):
            return any(walk(v) for v in value)
        return False

    try:
        return walk(document)
    except RecursionError:
        return False
