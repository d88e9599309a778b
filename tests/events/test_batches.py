"""Outbox batches (events on their way to ClickHouse) are tenant rows under RLS, like the outbox."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from analytics import services
from metis.events import recorder
from metis.events.models import EventOutbox, EventOutboxBatch
from tenants import db, events


def claim(tenant, n: int) -> services.Batch:
    with db.tenant_context(tenant.pk):
        for _ in range(n):
            recorder.record_event(tenant=tenant, event_type=events.SIGN_IN)
    batch = services._claim_batch(tenant.pk, 100, orphans=False)
    assert batch is not None and batch.size == n
    return batch


def test_a_claim_moves_the_events_out_of_the_outbox_into_one_batch_row(tenant):
    batch = claim(tenant, 3)
    with db.tenant_context(tenant.pk):
        assert EventOutbox.objects.count() == 0
        (held,) = EventOutboxBatch.objects.all()
    assert (held.token, held.size, len(held.event_ids), held.attempts) == (batch.token, 3, 3, 0)
    assert held.claimed_at is not None


def test_another_tenant_cannot_read_change_or_forge_a_batch(tenant, other_tenant):
    batch = claim(tenant, 2)
    with db.tenant_context(other_tenant.pk):
        assert EventOutboxBatch.objects.count() == 0  # the ORM, without our filter
        with connection.cursor() as cursor:  # raw SQL as the app role
            cursor.execute("SELECT count(*) FROM events_outbox_batch")
            assert cursor.fetchone()[0] == 0
            cursor.execute(
                "UPDATE events_outbox_batch SET claimed_at = NULL WHERE token = %s", [batch.token]
            )
            assert cursor.rowcount == 0
            cursor.execute("DELETE FROM events_outbox_batch WHERE token = %s", [batch.token])
            assert cursor.rowcount == 0
        # Its drain neither re-sends nor deletes the other tenant's batch.
        assert services._claim_batch(other_tenant.pk, 100) is None
        with (
            pytest.raises(DatabaseError, match="row-level security"),
            transaction.atomic(),
            connection.cursor() as cursor,  # a batch row in the first tenant's name
        ):
            cursor.execute(
                "INSERT INTO events_outbox_batch (token, tenant_id, attempts, last_error, "
                "size, oldest_at, event_ids, event_types, event_data, user_ids, staff_ids, "
                "occurred_ats) VALUES (gen_random_uuid(), %s, 0, '', 0, now(), '{}', '{}', "
                "'{}', '{}', '{}', '{}')",
                [tenant.pk],
            )
    with connection.cursor() as cursor:  # no context: nothing
        cursor.execute("SELECT count(*) FROM events_outbox_batch")
        assert cursor.fetchone()[0] == 0
    with db.tenant_context(tenant.pk):
        assert EventOutboxBatch.objects.get().token == batch.token
        assert EventOutboxBatch.objects.get().claimed_at is not None
