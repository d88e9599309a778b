"""The event outbox: events wait here, written in the business write's transaction, until the
analytics drain delivers them to ClickHouse.

The drain moves a batch of pending rows out of the outbox into one `EventOutboxBatch` row (in
one statement) and deletes that row once ClickHouse has the batch: a delivered event leaves no
row behind, and costs PostgreSQL one deleted outbox row plus its share of one batch row.
"""

from __future__ import annotations

import uuid

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone

from tenants.models import Tenant, TenantOwnedModel, TenantOwnedQuerySet


class OutboxStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    # Rows delivered before batches moved to their own table (events 0003); purged as before.
    SENT = "sent", "Delivered to ClickHouse"
    REJECTED = "rejected", "Rejected by ClickHouse (set aside)"


class EventOutboxQuerySet(TenantOwnedQuerySet):
    def pending(self) -> EventOutboxQuerySet:
        return self.filter(status=OutboxStatus.PENDING)

    def rejected(self) -> EventOutboxQuerySet:
        return self.filter(status=OutboxStatus.REJECTED)


class EventOutbox(TenantOwnedModel):
    """One event, written with the business change; the drain moves it into a batch.

    `id` becomes the ClickHouse `event_id`. A pending row is waiting; a rejected one was refused
    by ClickHouse and set aside (with `attempts` and `last_error`) until staff requeue it.
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
            # What the drain reads: a tenant's pending rows, oldest first.
            models.Index(
                fields=["tenant", "occurred_at"],
                condition=models.Q(status="pending"),
                name="outbox_pending",
            ),
            models.Index(fields=["tenant", "status", "sent_at"], name="outbox_tenant_status"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} at {self.occurred_at:%Y-%m-%d %H:%M:%S} ({self.status})"


class EventOutboxBatch(TenantOwnedModel):
    """Events claimed together by the drain, on their way to ClickHouse, under one token.

    `token` is the batch's insert deduplication token. The batch and the removal of its rows
    from the outbox commit together, before the insert is tried; the row is deleted once
    ClickHouse has the batch. A batch still here with no live claim (`claimed_at` empty, or
    older than the claim timeout: its drain died, perhaps after ClickHouse took it) is re-sent
    with the same token and the same rows, and ClickHouse drops the repeat.

    The events are held column by column (arrays in the order sent), so PostgreSQL writes one
    row per batch, not one per event. They keep what the outbox row held, so an event
    ClickHouse rejects goes back to the outbox, set aside, as it was.
    """

    token = models.UUIDField(primary_key=True, editable=False)
    # The index below leads with tenant_id: no separate FK index.
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False)
    claimed_at = models.DateTimeField(null=True, blank=True)  # empty: released, send again
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    size = models.PositiveIntegerField()
    oldest_at = models.DateTimeField()  # the backlog's age counts batches too
    event_ids = ArrayField(models.UUIDField())
    event_types = ArrayField(models.CharField(max_length=100))
    event_data = ArrayField(models.JSONField())
    user_ids = ArrayField(models.UUIDField(null=True))
    staff_ids = ArrayField(models.IntegerField(null=True))
    occurred_ats = ArrayField(models.DateTimeField())

    class Meta:
        db_table = "events_outbox_batch"
        verbose_name = "outbox batch"
        constraints = [*TenantOwnedModel.Meta.constraints]
        indexes = [models.Index(fields=["tenant", "oldest_at"], name="outbox_batch_tenant_oldest")]

    def __str__(self) -> str:
        return f"batch {self.token} ({self.size} events)"
