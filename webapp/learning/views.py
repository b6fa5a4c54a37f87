"""The policies page: versions with their evaluations, rollouts (canary → promote → rollback)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from webapp.fleet.roles import user_can, user_capabilities, user_roles


@login_required
def policies(request: HttpRequest) -> HttpResponse:
    if not user_can(request.user, "view"):
        raise PermissionDenied("your role may not see the fleet's policies")
    return render(request, "learning/policies.html", {
        "page": "policies", "roles": user_roles(request.user), "can": sorted(user_capabilities(request.user)),
        "can_rollout": user_can(request.user, "rollout"),
    })
