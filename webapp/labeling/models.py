"""Labeling: processed clips, the queue of episodes waiting for a label, labels and their history,
and the failure taxonomy (data, per station)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from webapp.fleet.models import Episode, EpisodeUpload, Station


class FailureMode(models.Model):
    """One entry of a station's failure taxonomy; rows with no station are the default taxonomy."""

    station = models.ForeignKey(Station, null=True, blank=True, on_delete=models.CASCADE, related_name="failure_modes")
    key = models.SlugField(max_length=32)
    label = models.CharField(max_length=100)
    order = models.PositiveSmallIntegerField(default=0)
    needs_text = models.BooleanField(default=False, help_text="'other': the label must say what")
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["order", "key"]
        constraints = [models.UniqueConstraint(fields=["station", "key"], name="failure_mode_unique_per_station")]

    def __str__(self) -> str:
        return self.key


class Clip(models.Model):
    """What processing an upload produced: per-camera video facts and thumbnails, and the timeline."""

    upload = models.OneToOneField(EpisodeUpload, on_delete=models.CASCADE, related_name="clip")
    episode = models.OneToOneField(Episode, on_delete=models.CASCADE, related_name="clip")
    processed_at = models.DateTimeField(auto_now_add=True)
    duration_s = models.FloatField()
    fps = models.FloatField()
    videos = models.JSONField(default=dict, help_text="camera -> {file, frames, width, height, codec, duration_s, thumbnail}")
    timeline = models.JSONField(default=dict, help_text="segments, phases, confidence and torque curves, markers")


class QueueItem(models.Model):
    """An episode that needs a label (a failure, or a cycle a person stepped into)."""

    class State(models.TextChoices):
        OPEN = "open"
        LABELED = "labeled"
        CONFIRMED = "confirmed"
        DISPUTED = "disputed"

    episode = models.OneToOneField(Episode, on_delete=models.CASCADE, related_name="queue_item")
    created_at = models.DateTimeField(auto_now_add=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN, db_index=True)
    assigned_to = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    trigger = models.CharField(max_length=32, blank=True, help_text="the first intervention's trigger, if any")

    class Meta:
        ordering = ["created_at"]


class Label(models.Model):
    """One version of an episode's label. Editing adds a version; the newest is `current`."""

    class Review(models.TextChoices):
        PENDING = "pending"
        CONFIRMED = "confirmed"
        DISPUTED = "disputed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    episode = models.ForeignKey(Episode, on_delete=models.CASCADE, related_name="labels")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    current = models.BooleanField(default=True)
    failure_mode = models.CharField(max_length=32, blank=True, help_text="empty: the cycle did not fail")
    failure_t = models.FloatField(null=True, blank=True, help_text="seconds into the episode")
    good_demo = models.BooleanField(null=True, help_text="is the human's recovery a good demonstration?")
    other_text = models.CharField(max_length=300, blank=True)
    notes = models.TextField(blank=True, max_length=4000)
    review = models.CharField(max_length=16, choices=Review.choices, default=Review.PENDING)
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.CharField(max_length=1000, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["episode", "current"])]


class Export(models.Model):
    """A dataset export: which episodes, in which format, how far along, and the zip it made."""

    class Format(models.TextChoices):
        LEROBOT_V3 = "lerobot_v3"
        XR0 = "xr0"

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    format = models.CharField(max_length=16, choices=Format.choices)
    episodes = models.JSONField(default=list, help_text="episode ids, in export order")
    filters = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    progress = models.FloatField(default=0.0)
    message = models.CharField(max_length=500, blank=True)
    file = models.CharField(max_length=500, blank=True, help_text="path under MEDIA_ROOT")
    size = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
