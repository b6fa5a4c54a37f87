"""Labeling pages: the queue and the clip review page (live parts are ES modules over /api/labeling)."""

from __future__ import annotations

import uuid

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from webapp.fleet.models import Episode, Robot, Station
from webapp.fleet.roles import user_can, user_capabilities, user_roles
from webapp.labeling.services.labels import failure_mode_keys


def _context(request: HttpRequest, **extra: object) -> dict[str, object]:
    can = user_capabilities(request.user)
    if "episodes" not in can:
        raise PermissionDenied("your role may not read episodes")
    return {"page": "labeling", "roles": user_roles(request.user), "can": sorted(can), **extra}


@login_required
def queue(request: HttpRequest) -> HttpResponse:
    options = {
        "stations": list(Station.objects.order_by("name").values_list("name", flat=True)),
        "robots": list(Robot.objects.order_by("name").values_list("name", flat=True)),
        "policies": sorted(set(Episode.objects.exclude(policy_version="").values_list("policy_version", flat=True).distinct())),
        "failure_modes": failure_mode_keys(),
    }
    return render(request, "labeling/queue.html", _context(request, options=options))


@login_required
def episode(request: HttpRequest, episode_id: uuid.UUID) -> HttpResponse:
    context = _context(request)
    if not Episode.objects.filter(pk=episode_id).exists():
        raise Http404("no such episode")
    config = {"episode": str(episode_id), "user": request.user.username, "canLabel": user_can(request.user, "label")}
    return render(request, "labeling/episode.html", {**context, "config": config})
