"""Alerts: what broke, since when, who acknowledged it, and whether people were told.

System tables, not tenant data (no tenant column, no RLS): staff read them in the admin.
Rows are written by monitoring.alerts.services only.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Severity(models.TextChoices):
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


class AlertState(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


ACTIVE_STATES = (AlertState.OPEN, AlertState.ACKNOWLEDGED)


class AlertQuerySet(models.QuerySet):
    def active(self) -> AlertQuerySet:
        """Open or acknowledged: the condition has not yet been seen to clear."""
        return self.filter(state__in=ACTIVE_STATES)

    def most_urgent_first(self) -> AlertQuerySet:
        # "critical" sorts before "warning"; then the oldest trouble first.
        return self.order_by("severity", "first_seen_at")


class Alert(models.Model):
    rule = models.CharField(max_length=64)
    subject = models.CharField(
        max_length=200, blank=True, help_text="What the rule is about: a queue, a backup kind."
    )
    severity = models.CharField(max_length=16, choices=Severity)
    state = models.CharField(max_length=16, choices=AlertState, default=AlertState.OPEN)
    message = models.TextField(help_text="The latest figure and its threshold.")
    value = models.FloatField(null=True, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    clear_since = models.DateTimeField(
        null=True, blank=True, help_text="Seen clear at every evaluation since (not yet resolved)."
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    objects = AlertQuerySet.as_manager()

    class Meta:
        ordering = ["-first_seen_at"]
        constraints = [
            # One active alert per condition: a condition that stays is one alert, not many.
            models.UniqueConstraint(
                fields=["rule", "subject"],
                condition=models.Q(state__in=["open", "acknowledged"]),
                name="monitoring_one_active_alert_per_key",
            )
        ]
        indexes = [models.Index(fields=["state", "severity", "rule"])]

    def __str__(self) -> str:
        return f"{self.severity} {self.key}: {self.state}"

    @property
    def key(self) -> str:
        """The de-duplication key: the rule, and its subject if it has one."""
        return f"{self.rule}:{self.subject}" if self.subject else self.rule

    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES


class NotificationEvent(models.TextChoices):
    OPENED = "opened", "Opened"
    RESOLVED = "resolved", "Resolved"


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    WEBHOOK = "webhook", "Webhook"


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    RETRYING = "retrying", "Retrying"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class AlertNotification(models.Model):
    """One message about an alert on one channel, and how its delivery went."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notifications")
    event = models.CharField(max_length=16, choices=NotificationEvent)
    channel = models.CharField(max_length=16, choices=Channel)
    state = models.CharField(max_length=16, choices=DeliveryState, default=DeliveryState.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["alert", "event", "channel"], name="monitoring_one_notification_each"
            )
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.event} of {self.alert.key}: {self.state}"


class CounterBaseline(models.Model):
    """Counter totals as the previous evaluation read them: a rule on a counter (S3 errors)
    judges what was added since."""

    name = models.CharField(max_length=100, unique=True)
    totals = models.JSONField(default=dict)
    read_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} at {self.read_at:%Y-%m-%d %H:%M:%S}"
