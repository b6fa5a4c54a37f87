"""Dashboard pages: server-rendered shells; the live parts are ES modules talking /ws/fleet/."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from webapp.fleet.roles import user_capabilities, user_roles


def _context(request: HttpRequest, page: str) -> dict[str, object]:
    return {"page": page, "roles": user_roles(request.user), "can": sorted(user_capabilities(request.user))}


@login_required
def fleet(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/fleet.html", _context(request, "fleet"))
