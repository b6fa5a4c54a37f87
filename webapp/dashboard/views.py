"""Dashboard pages: server-rendered shells; the live parts are ES modules talking /ws/fleet/."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from webapp.fleet.models import Robot
from webapp.fleet.roles import user_capabilities, user_roles


def _context(request: HttpRequest, page: str, **extra: object) -> dict[str, object]:
    return {"page": page, "roles": user_roles(request.user), "can": sorted(user_capabilities(request.user)), **extra}


def _require(request: HttpRequest, capability: str) -> None:
    if capability not in user_capabilities(request.user):
        raise PermissionDenied(f"your role may not use this page ({capability})")


@login_required
def fleet(request: HttpRequest) -> HttpResponse:
    can = user_capabilities(request.user)
    if "view" not in can and "episodes" in can:
        return redirect("labeling_queue")  # labelers start where their work is
    return render(request, "dashboard/fleet.html", _context(request, "fleet"))


@login_required
def robot(request: HttpRequest, name: str) -> HttpResponse:
    _require(request, "view")
    if not Robot.objects.filter(name=name).exists():
        raise Http404(f"no robot named {name}")
    config = {"robot": name, "maxLatencyMs": settings.FOREMAN_TELEOP_MAX_LATENCY_MS}
    return render(request, "dashboard/robot.html", _context(request, "fleet", robot=name, config=config))


@login_required
def kpis(request: HttpRequest) -> HttpResponse:
    _require(request, "view")
    return render(request, "dashboard/kpis.html", _context(request, "kpis"))


@login_required
def setup(request: HttpRequest) -> HttpResponse:
    _require(request, "administer")
    return render(request, "dashboard/setup.html", _context(request, "setup"))


@login_required
def audit(request: HttpRequest) -> HttpResponse:
    _require(request, "audit")
    from webapp.fleet.models import AuditEvent

    options = {
        "robots": list(Robot.objects.order_by("name").values_list("name", flat=True)),
        "actors": sorted(set(AuditEvent.objects.values_list("actor", flat=True).distinct()[:500])),
        "actions": sorted(set(AuditEvent.objects.values_list("action", flat=True).distinct()[:200])),
    }
    return render(request, "dashboard/audit.html", _context(request, "audit", options=options))
