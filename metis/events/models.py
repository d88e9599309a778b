"""The event outbox: events wait here, written in the business write's transaction, until the
analytics drain delivers them to ClickHouse."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from tenants.models import Tenant, TenantOwnedModel, TenantOwnedQuerySet


class OutboxStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Delivered to ClickHouse"
    REJECTED = "rejected", "Rejected by ClickHouse (set aside)"


class EventOutboxQuerySet(TenantOwnedQuerySet):
    def pending(self) -> EventOutboxQuerySet:
        return self.filter(status=OutboxStatus.PENDING)

    def rejected(self) -> EventOutboxQuerySet:
        return self.filter(status=OutboxStatus.REJECTED)


class EventOutbox(TenantOwnedModel):
    """One event, written with the business change; the drain copies it to ClickHouse.

    `id` becomes the ClickHouse `event_id`. `batch_token` is the insert deduplication token of
    the batch that claimed the row: it is committed before the insert is tried, so a retried
    batch carries the same token and the same rows, and ClickHouse drops the repeat.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # The indexes below lead with tenant_id: no separate FK index.
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False)
    event_type = models.CharField(max_length=100)
    data = models.JSONField(default=dict, blank=True)
    # Plain ids, not foreign keys: an event outlives the user or staff member it names.
    user_id = models.UUIDField(null=True, blank=True)
    staff_id = models.IntegerField(null=True, blank=True)
    occurred_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(
        max_length=10, choices=OutboxStatus.choices, default=OutboxStatus.PENDING
    )
    batch_token = models.UUIDField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    objects = EventOutboxQuerySet.as_manager()  # type: ignore[misc]  # narrows the base manager

    class Meta:
        # The table kept its name when the model moved here from analytics (state-only).
        db_table = "analytics_event_outbox"
        ordering = ["occurred_at"]
        verbose_name = "outbox event"
        constraints = [*TenantOwnedModel.Meta.constraints]
        indexes = [
            # What the drain reads: a tenant's unclaimed rows, oldest first, and its batches
            # claimed but not yet delivered (few, and found without scanning the backlog).
            models.Index(
                fields=["tenant", "occurred_at"],
                condition=models.Q(status="pending", batch_token__isnull=True),
                name="outbox_pending_unclaimed",
            ),
            models.Index(
                fields=["tenant", "batch_token"],
                condition=models.Q(status="pending", batch_token__isnull=False),
                name="outbox_pending_claimed",
            ),
            models.Index(fields=["tenant", "status", "sent_at"], name="outbox_tenant_status"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} at {self.occurred_at:%Y-%m-%d %H:%M:%S} ({self.status})"
