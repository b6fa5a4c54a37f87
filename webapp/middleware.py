"""Request hygiene shared by every page and the API."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse


def reject_nul_characters(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    """A NUL character in the query string is refused up front: PostgreSQL cannot store or compare
    text containing one, so a filter like `?robot=%00` would otherwise end as a database error (500).
    The API answers 422 with its usual error body; pages answer 400."""

    def middleware(request: HttpRequest) -> HttpResponse:
        if any("\x00" in key or any("\x00" in value for value in values) for key, values in request.GET.lists()):
            message = "the query string contains a NUL character"
            if request.path.startswith("/api/"):
                return JsonResponse({"detail": message}, status=422)
            return HttpResponseBadRequest(message)
        return get_response(request)

    return middleware
