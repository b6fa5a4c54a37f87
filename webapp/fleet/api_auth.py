"""The HTTP API's credentials and permission check, shared by every app's router.

The token lookups themselves are services.auth, which the WebSocket consumers use too.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from ninja.errors import HttpError
from ninja.security import APIKeyCookie, HttpBearer

from webapp.fleet.models import Robot
from webapp.fleet.roles import Capability, user_can
from webapp.fleet.services.auth import robot_authenticate, user_authenticate


class UserBearer(HttpBearer):
    """Personal API tokens (`python manage.py api_token USER`)."""

    def authenticate(self, request: HttpRequest, token: str) -> Any:
        user = user_authenticate(token)
        if user is not None:
            request.user = user
        return user


class UserSession(APIKeyCookie):
    """The browser's Django session (CSRF-checked on unsafe methods)."""

    param_name = settings.SESSION_COOKIE_NAME

    def authenticate(self, request: HttpRequest, key: str | None) -> Any:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return user
        return None


class RobotBearer(HttpBearer):
    """Robot tokens, for the /api/robot/ endpoints only."""

    def authenticate(self, request: HttpRequest, token: str) -> Robot | None:
        robot = robot_authenticate(token)
        if robot is not None:
            request.robot = robot
        return robot


user_auth = [UserBearer(), UserSession(csrf=True)]


def require(request: HttpRequest, capability: Capability) -> Any:
    """The request's user if their role may do `capability`; a 403 otherwise."""
    user = request.auth
    if not user_can(user, capability):
        raise HttpError(403, f"your role may not do this ({capability})")
    return user


def source(request: HttpRequest) -> str:
    """Where a request came from, for the audit log."""
    return f"http {request.META.get('REMOTE_ADDR', '?')}"
