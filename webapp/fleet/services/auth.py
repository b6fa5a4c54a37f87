"""Who a bearer token belongs to: one answer for the HTTP API's auth classes and the WebSocket consumers."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from webapp.fleet.models import ApiToken, Robot
from webapp.fleet.tokens import ROBOT_TOKEN_PREFIX, USER_TOKEN_PREFIX, hash_token

# Real tokens are ~47 characters; refuse anything absurd before hashing it.
MAX_TOKEN_LENGTH = 200


def user_authenticate(token: str | None) -> AbstractBaseUser | None:
    """The active user of an unrevoked personal API token (fut_...), or None; records the token's use."""
    if not token or not token.startswith(USER_TOKEN_PREFIX) or len(token) > MAX_TOKEN_LENGTH:
        return None
    record = ApiToken.objects.select_related("user").filter(token_hash=hash_token(token), revoked_at__isnull=True).first()
    if record is None or not record.user.is_active:
        return None
    ApiToken.objects.filter(pk=record.pk).update(last_used_at=timezone.now())
    return record.user


def robot_authenticate(token: str | None) -> Robot | None:
    """The robot of a robot token (frt_...), or None."""
    if not token or not token.startswith(ROBOT_TOKEN_PREFIX) or len(token) > MAX_TOKEN_LENGTH:
        return None
    return Robot.objects.select_related("station").filter(token_hash=hash_token(token), retired_at__isnull=True).first()
