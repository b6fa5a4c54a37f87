"""Users, roles and personal API tokens."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from webapp.fleet.models import ApiToken
from webapp.fleet.roles import ROLES
from webapp.fleet.services.audit import audit_record
from webapp.fleet.tokens import USER_TOKEN_PREFIX, hash_token, new_token


def roles_ensure() -> None:
    for role in ROLES:
        Group.objects.get_or_create(name=role)


def user_create_with_role(*, username: str, password: str, role: str) -> Any:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    roles_ensure()
    user, _ = get_user_model().objects.get_or_create(username=username)
    user.set_password(password)
    user.is_staff = role == "admin"
    user.is_superuser = role == "admin"
    user.save()
    user.groups.set([Group.objects.get(name=role)])
    return user


def api_token_issue(*, user: Any) -> str:
    token = new_token(USER_TOKEN_PREFIX)
    ApiToken.objects.create(user=user, token_hash=hash_token(token), prefix=token[:8])
    audit_record(actor=user.username, action="api_token_issued", prefix=token[:8])
    return token


def api_token_revoke(*, token: str, actor: str) -> bool:
    """Revoke a personal API token (it stops working at once); False if it was unknown or already revoked."""
    from django.utils import timezone

    record = ApiToken.objects.select_related("user").filter(token_hash=hash_token(token), revoked_at__isnull=True).first()
    if record is None:
        return False
    record.revoked_at = timezone.now()
    record.save(update_fields=["revoked_at"])
    audit_record(actor=actor, action="api_token_revoked", prefix=record.prefix, user=record.user.username)
    return True
