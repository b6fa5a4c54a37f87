"""Policy rollouts (canary → fleet, rollback) and retraining rounds."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from webapp.fleet.models import PolicyVersion, Robot, Station


class Rollout(models.Model):
    """Putting one policy version on a station's robots: one canary first, then the rest."""

    class Stage(models.TextChoices):
        CANARY = "canary"
        FLEET = "fleet"
        ROLLED_BACK = "rolled_back"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    policy = models.ForeignKey(PolicyVersion, on_delete=models.PROTECT, related_name="rollouts")
    station = models.ForeignKey(Station, null=True, blank=True, on_delete=models.SET_NULL)
    canary = models.ForeignKey(Robot, on_delete=models.PROTECT, related_name="canary_rollouts")
    stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.CANARY)
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)
    promoted_at = models.DateTimeField(null=True, blank=True)
    rolled_back_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]


class RolloutTarget(models.Model):
    """One policy_rollout command to one robot; its id is the command id the agent acks."""

    class State(models.TextChoices):
        SENT = "sent"
        LOADED = "loaded"  # the agent verified and loaded it; it goes live at the next cycle
        LIVE = "live"  # a cycle started on it
        FAILED = "failed"

    class Purpose(models.TextChoices):
        ROLLOUT = "rollout"
        ROLLBACK = "rollback"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="targets")
    robot = models.ForeignKey(Robot, on_delete=models.CASCADE, related_name="rollout_targets")
    purpose = models.CharField(max_length=16, choices=Purpose.choices, default=Purpose.ROLLOUT)
    policy_version = models.CharField(max_length=100)  # what this command installs
    previous_version = models.CharField(max_length=100, blank=True)  # what the robot ran before
    state = models.CharField(max_length=16, choices=State.choices, default=State.SENT)
    error = models.CharField(max_length=500, blank=True)
    sent_at = models.DateTimeField(auto_now_add=True)
    acked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["sent_at"]


class RetrainingRound(models.Model):
    """Fine-tune a policy on labeled episodes, evaluate on held-out seeds, register the result."""

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    base_policy = models.CharField(max_length=100)
    episode_ids = models.JSONField(default=list)
    options = models.JSONField(default=dict, blank=True)  # training settings (epochs, weights, seeds)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    progress = models.FloatField(default=0.0)
    stage = models.CharField(max_length=100, blank=True)
    error = models.TextField(blank=True)
    result = models.ForeignKey(PolicyVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    report = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
