"""Fleet domain: where robots work, who drives them, what went wrong and who did what."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class Site(models.Model):
    name = models.CharField(max_length=100, unique=True)
    # Retired, never deleted: episodes, audit rows and exports still name it.
    retired_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name


class Line(models.Model):
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="lines")
    name = models.CharField(max_length=100)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["site", "name"], name="line_unique_per_site")]

    def __str__(self) -> str:
        return f"{self.site}/{self.name}"


class Station(models.Model):
    line = models.ForeignKey(Line, on_delete=models.CASCADE, related_name="stations")
    name = models.CharField(max_length=100, unique=True)
    task = models.CharField(max_length=200, default="install self-tapping nuts, both sides")
    takt_s = models.FloatField(default=76.0)
    retired_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name


class PolicyVersion(models.Model):
    name = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL)
    checkpoint = models.CharField(max_length=500, blank=True, help_text="path under MEDIA_ROOT")
    sha256 = models.CharField(max_length=64, blank=True)
    evaluation = models.JSONField(default=dict, blank=True)
    notes = models.TextField(blank=True)

    def __str__(self) -> str:
        return self.name


class RobotMode(models.TextChoices):
    AUTONOMOUS = "autonomous"
    PAUSED = "paused"
    TELEOP = "teleop"
    SHARED = "shared"
    ESTOPPED = "estopped"
    HOLD = "hold"


class Robot(models.Model):
    name = models.SlugField(max_length=64, unique=True)
    station = models.ForeignKey(Station, null=True, blank=True, on_delete=models.SET_NULL, related_name="robots")
    cameras = models.JSONField(default=list, blank=True)
    capabilities = models.JSONField(default=list, blank=True)
    features = models.JSONField(default=dict, blank=True, help_text="hello.features: control rate, state and action features")
    # Only a SHA-256 of the token is kept; the token itself is shown once.
    token_hash = models.CharField(max_length=64, blank=True, db_index=True)
    token_prefix = models.CharField(max_length=12, blank=True)
    policy_version = models.CharField(max_length=100, blank=True)
    # Live status that changes rarely (telemetry lives in the cache, not here).
    online = models.BooleanField(default=False)
    connection = models.CharField(max_length=200, blank=True, help_text="channel name of the live robot socket")
    mode = models.CharField(max_length=16, choices=RobotMode.choices, default=RobotMode.PAUSED)
    last_seen = models.DateTimeField(null=True, blank=True)
    # The server's e-stop latch: set by a person or by the robot, cleared only by an authorized person.
    estopped = models.BooleanField(default=False)
    estopped_at = models.DateTimeField(null=True, blank=True)
    estopped_by = models.CharField(max_length=150, blank=True)
    estop_reason = models.CharField(max_length=500, blank=True)
    # A retired robot has no token and leaves the fleet; its episodes and audit rows stay.
    retired_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name


class Episode(models.Model):
    class Outcome(models.TextChoices):
        RUNNING = "running"
        SUCCESS = "success"
        FAILURE = "failure"
        ABORTED = "aborted"

    id = models.UUIDField(primary_key=True)
    robot = models.ForeignKey(Robot, on_delete=models.CASCADE, related_name="episodes")
    station = models.ForeignKey(Station, null=True, on_delete=models.SET_NULL, related_name="episodes")
    policy_version = models.CharField(max_length=100, blank=True)
    cycle_index = models.PositiveIntegerField(default=0)
    seed = models.BigIntegerField(null=True, blank=True)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    duration_s = models.FloatField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.RUNNING)
    failure_mode = models.CharField(max_length=32, blank=True)
    intervened = models.BooleanField(default=False)
    # Action numbers the policy or a person asked outside the robot's declared limits (sent clamped).
    actions_clamped = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["robot", "started_at"]), models.Index(fields=["outcome"])]
        ordering = ["-started_at"]


class Intervention(models.Model):
    class Trigger(models.TextChoices):
        POLICY_UNCERTAINTY = "policy_uncertainty"
        FAULT = "fault"
        TAKT_OVERRUN = "takt_overrun"
        SUPERVISOR = "supervisor"
        ESTOP = "estop"

    class State(models.TextChoices):
        RAISED = "raised"
        ACKNOWLEDGED = "acknowledged"
        CLAIMED = "claimed"
        RESOLVED = "resolved"

    class Severity(models.TextChoices):
        LOW = "low"
        MEDIUM = "medium"
        HIGH = "high"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    robot = models.ForeignKey(Robot, on_delete=models.CASCADE, related_name="interventions")
    episode = models.ForeignKey(Episode, null=True, blank=True, on_delete=models.SET_NULL, related_name="interventions")
    trigger = models.CharField(max_length=32, choices=Trigger.choices)
    severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.MEDIUM)
    detail = models.CharField(max_length=500, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.RAISED)
    raised_at = models.DateTimeField()
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolution = models.CharField(max_length=32, blank=True)

    class Meta:
        indexes = [models.Index(fields=["state", "raised_at"]), models.Index(fields=["robot", "raised_at"])]
        ordering = ["-raised_at"]


class ControlSession(models.Model):
    """A lease: one person's exclusive custody of one robot. The id is the lease id the agent obeys."""

    class EndReason(models.TextChoices):
        RELEASED = "released"
        EXPIRED = "expired"
        OPERATOR_DISCONNECTED = "operator_disconnected"
        TAKEN_OVER = "taken_over"
        REVOKED = "revoked"

    class Mode(models.TextChoices):
        TELEOP = "teleop"
        SHARED = "shared"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    robot = models.ForeignKey(Robot, on_delete=models.CASCADE, related_name="control_sessions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="control_sessions")
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.TELEOP)
    # The dashboard socket that claimed it; when that socket closes, the lease ends.
    holder_channel = models.CharField(max_length=200, blank=True)
    started_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=32, choices=EndReason.choices, blank=True)
    intervention = models.ForeignKey(Intervention, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        constraints = [
            # The database itself refuses a second active lease on a robot.
            models.UniqueConstraint(fields=["robot"], condition=Q(ended_at__isnull=True), name="one_active_lease_per_robot")
        ]
        ordering = ["-started_at"]


class AuditEvent(models.Model):
    """Append-only record of who did what to which robot, when and from where."""

    at = models.DateTimeField(db_index=True)
    actor = models.CharField(max_length=150, help_text="username, robot:<name> or system")
    action = models.CharField(max_length=64, db_index=True)
    robot = models.ForeignKey(Robot, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events")
    source = models.CharField(max_length=200, blank=True, help_text="where from: ws/http, client address")
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None:
            raise PermissionError("audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise PermissionError("audit events are append-only")


class ApiToken(models.Model):
    """A personal API token for scripts (`Authorization: Bearer fut_...`); stored hashed."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    token_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=12)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)


class EpisodeUpload(models.Model):
    """Files an agent uploaded for one episode; processed by Celery (labeling issue)."""

    class State(models.TextChoices):
        RECEIVED = "received"
        PROCESSING = "processing"
        READY = "ready"
        REJECTED = "rejected"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    episode = models.OneToOneField(Episode, on_delete=models.CASCADE, related_name="upload")
    received_at = models.DateTimeField(auto_now_add=True)
    directory = models.CharField(max_length=500)
    files = models.JSONField(default=dict)
    metadata = models.JSONField(default=dict)
    state = models.CharField(max_length=16, choices=State.choices, default=State.RECEIVED)
    reason = models.CharField(max_length=500, blank=True)
