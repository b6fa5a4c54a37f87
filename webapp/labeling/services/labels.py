"""Labels: submit (a new version each time), second-reviewer confirm/dispute, queue assignment."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from webapp.fleet.models import Episode, EpisodeUpload, Robot
from webapp.fleet.roles import Capability, user_can
from webapp.fleet.services.audit import audit_record
from webapp.fleet.services.errors import Conflict, Forbidden, Invalid, NotFound
from webapp.labeling.models import FailureMode, Label, QueueItem

# Every robot may report these (foreman_protocol GENERIC_FAILURE_MODES), so every declared taxonomy ends with them.
GENERIC_LABELS = {"takt_overrun": "Takt overrun", "fault": "Station fault", "other": "Other (say what)"}


def declared_taxonomy(declaration: dict[str, Any] | None) -> list[FailureMode]:
    """The failure modes a robot declares (hello.features.failure_modes) in its order, then the
    generic ones; unsaved rows, read like the stored ones. Empty when it declares none."""
    declared = (declaration or {}).get("failure_modes") or []
    if not declared:
        return []
    modes = {mode["key"]: FailureMode(key=mode["key"], label=mode["label"]) for mode in declared}
    for key, label in GENERIC_LABELS.items():
        modes.setdefault(key, FailureMode(key=key, label=label, needs_text=key == "other"))
    for order, mode in enumerate(modes.values()):
        mode.order = order
    return list(modes.values())


def taxonomy_for(station_id: int | None, declarations: list[dict[str, Any] | None] | None = None) -> list[FailureMode]:
    """What a labeler chooses from at this station: the station's own taxonomy if an admin gave it
    one; else the first of `declarations` that declares failure modes, then its robots'; else the
    default (the nut station's, for robots that declare none)."""
    if station_id:
        own = list(FailureMode.objects.filter(station_id=station_id, active=True))
        if own:
            return own
        declarations = [*(declarations or []),
                        *Robot.objects.filter(station_id=station_id, retired_at__isnull=True).order_by("name").values_list("features", flat=True)]
    for declaration in declarations or []:
        declared = declared_taxonomy(declaration)
        if declared:
            return declared
    return list(FailureMode.objects.filter(station__isnull=True, active=True))


def episode_taxonomy(episode: Episode) -> list[FailureMode]:
    """An episode's taxonomy: its station's, else what the robot declared when it recorded the
    episode (the upload's metadata), else what it declares now."""
    upload = EpisodeUpload.objects.filter(episode=episode).values_list("metadata", flat=True).first()
    return taxonomy_for(episode.station_id, [(upload or {}).get("features"), episode.robot.features])


def failure_mode_keys() -> list[str]:
    """Every failure mode a filter may pick: the stored taxonomies' and what the robots declare."""
    stored = FailureMode.objects.filter(active=True).order_by("order").values_list("key", flat=True)
    declared = [mode.key for features in Robot.objects.filter(retired_at__isnull=True).order_by("name").values_list("features", flat=True)
                for mode in declared_taxonomy(features)]
    return list(dict.fromkeys([*stored, *declared]))


def _require(user: Any, capability: Capability) -> None:
    if not user_can(user, capability):
        raise Forbidden(f"your role may not do this ({capability})")


def label_submit(*, episode_id: str, user: Any, failure_mode: str, failure_t: float | None, good_demo: bool | None,
                 other_text: str = "", notes: str = "", source: str = "") -> Label:
    _require(user, "label")
    with transaction.atomic():
        episode = Episode.objects.select_for_update().select_related("robot").filter(pk=episode_id).first()
        if episode is None:
            raise NotFound(f"no episode {episode_id}")
        modes = {m.key: m for m in episode_taxonomy(episode)}
        if failure_mode and failure_mode not in modes:
            raise Invalid(f"failure mode {failure_mode!r} is not in this station's taxonomy ({', '.join(modes)})")
        if failure_mode and modes[failure_mode].needs_text and not other_text.strip():
            raise Invalid(f"'{modes[failure_mode].label}' needs a few words saying what went wrong")
        duration = episode.duration_s or 0.0
        if failure_t is not None and not 0.0 <= failure_t <= max(duration, 0.0) + 0.5:
            raise Invalid(f"the moment of failure must lie within the episode (0–{duration:.1f} s)")
        if not failure_mode and failure_t is not None:
            raise Invalid("a moment of failure needs a failure mode")
        Label.objects.filter(episode=episode, current=True).update(current=False)
        label = Label.objects.create(episode=episode, author=user, failure_mode=failure_mode, failure_t=failure_t,
                                     good_demo=good_demo, other_text=other_text.strip()[:300], notes=notes[:4000])
        QueueItem.objects.update_or_create(episode=episode, defaults={"state": QueueItem.State.LABELED})
        audit_record(actor=user.username, action="episode_labeled", robot=episode.robot, source=source, episode=str(episode.id),
                     label=str(label.id), failure_mode=failure_mode or None, failure_t=failure_t, good_demo=good_demo)
    return label


def label_review(*, label_id: str, user: Any, verdict: str, note: str = "", source: str = "") -> Label:
    _require(user, "label")
    if verdict not in ("confirm", "dispute"):
        raise Invalid("verdict must be confirm or dispute")
    with transaction.atomic():
        label = Label.objects.select_for_update().select_related("episode__robot").filter(pk=label_id).first()
        if label is None:
            raise NotFound(f"no label {label_id}")
        if not label.current:
            raise Conflict("this label has been replaced by a newer version; review that one")
        if label.author_id == user.pk:
            raise Conflict("a second reviewer must be someone other than the label's author")
        if verdict == "dispute" and not note.strip():
            raise Invalid("say why you dispute the label")
        label.review = Label.Review.CONFIRMED if verdict == "confirm" else Label.Review.DISPUTED
        label.reviewer, label.reviewed_at, label.review_note = user, timezone.now(), note.strip()[:1000]
        label.save(update_fields=["review", "reviewer", "reviewed_at", "review_note"])
        state = QueueItem.State.CONFIRMED if verdict == "confirm" else QueueItem.State.DISPUTED
        QueueItem.objects.filter(episode=label.episode).update(state=state)
        audit_record(actor=user.username, action="label_confirmed" if verdict == "confirm" else "label_disputed", robot=label.episode.robot,
                     source=source, episode=str(label.episode_id), label=str(label.id), note=label.review_note or None)
    return label


def queue_assign(*, episode_id: str, user: Any, assignee: str | None, source: str = "") -> QueueItem:
    _require(user, "label")
    with transaction.atomic():
        item = QueueItem.objects.select_for_update().select_related("episode__robot").filter(episode_id=episode_id).first()
        if item is None:
            raise NotFound(f"episode {episode_id} is not in the labeling queue")
        target = None
        if assignee:
            target = get_user_model().objects.filter(username=assignee, is_active=True).first()
            if target is None:
                raise NotFound(f"no user {assignee!r}")
            if not user_can(target, "label"):
                raise Invalid(f"{assignee} may not label")
        item.assigned_to = target
        item.save(update_fields=["assigned_to"])
        audit_record(actor=user.username, action="label_assigned", robot=item.episode.robot, source=source,
                     episode=str(episode_id), assignee=assignee)
    return item
