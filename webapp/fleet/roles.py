"""Roles are Django groups; capabilities are what the protocol's role table grants."""

from __future__ import annotations

from typing import Any, Literal

Capability = Literal["view", "ack", "estop", "clear_estop", "control", "takeover", "episodes", "label", "audit", "rollout", "administer"]
ROLES = ("supervisor", "operator", "labeler", "admin")

CAPABILITIES: dict[str, frozenset[str]] = {
    "supervisor": frozenset({"view", "ack", "estop", "clear_estop", "episodes", "audit", "rollout"}),
    "operator": frozenset({"view", "ack", "estop", "control", "episodes"}),
    "labeler": frozenset({"episodes", "label"}),
    "admin": frozenset({"view", "ack", "estop", "clear_estop", "control", "takeover", "episodes", "label", "audit", "rollout", "administer"}),
}


def user_roles(user: Any) -> list[str]:
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return []
    cached = getattr(user, "_foreman_roles", None)
    if cached is None:
        names = set(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
        if user.is_superuser:
            names.add("admin")
        cached = sorted(names)
        user._foreman_roles = cached
    return cached


def user_capabilities(user: Any) -> frozenset[str]:
    caps: set[str] = set()
    for role in user_roles(user):
        caps |= CAPABILITIES[role]
    return frozenset(caps)


def user_can(user: Any, capability: Capability) -> bool:
    return capability in user_capabilities(user)
