"""Erasure reaches events not yet in ClickHouse: in the outbox, and in a batch the drain claimed."""

from __future__ import annotations

import pytest
from django.db import connection

from analytics import services
from metis.events import recorder
from metis.events.models import EventOutbox, EventOutboxBatch
from privacy.erasure import postgres
from privacy.erasure.plan import ErasurePlan
from tenants import db, events
from tests.analytics.conftest import events_in_clickhouse
from tests.factories import TenantUserFactory
from tests.privacy.conftest import events_naming

pytestmark = pytest.mark.committed


def test_erasure_removes_the_subjects_events_from_the_outbox_and_from_claimed_batches(
    clickhouse_db, tenant
):
    bob = TenantUserFactory(tenant=tenant, email="bob@acme.example")
    ann = TenantUserFactory(tenant=tenant, email="ann@acme.example")
    document_id = "6f1c1d2e-8f7a-4c39-9a44-1d0e6b8f2c11"

    def happen() -> None:
        with db.tenant_context(tenant.pk):
            recorder.record_event(tenant=tenant, event_type=events.SIGN_IN, user=bob)
            recorder.record_event(tenant=tenant, event_type=events.SIGN_IN, user=ann)
            recorder.record_event(
                tenant=tenant, event_type=events.SIGN_OUT, data={"document_id": document_id}
            )

    happen()
    claimed = services._claim_batch(tenant.pk, 100)  # a drain is on its way with these...
    assert claimed.size == 3
    happen()  # ...and these still wait in the outbox
    plan = ErasurePlan(
        str(tenant.pk), "user", str(bob.pk), user_ids=[str(bob.pk)], document_ids=[document_id]
    )
    with db.tenant_context(tenant.pk), connection.cursor() as cursor:
        before = postgres.rows_remaining(cursor, plan)
        counts = postgres.rows_erase(
            cursor, plan, tables={"analytics_event_outbox", "events_outbox_batch"}
        )
        after = postgres.rows_remaining(cursor, plan)
    assert (before["analytics_event_outbox"], before["events_outbox_batch"]) == (2, 2)
    assert counts == {
        "analytics_event_outbox": {"deleted": 2},
        "events_outbox_batch": {"rewritten": 1},
    }
    assert after["analytics_event_outbox"] == after["events_outbox_batch"] == 0
    with db.tenant_context(tenant.pk):
        assert [e.user_id for e in EventOutbox.objects.all()] == [ann.pk]
        (batch,) = EventOutboxBatch.objects.all()
    assert (batch.token, batch.size, batch.user_ids) == (claimed.token, 1, [ann.pk])

    # The batch is sent as it now is, when its claim runs out (its drain "died").
    with db.tenant_context(tenant.pk):
        EventOutboxBatch.objects.update(claimed_at=None)
    assert services.outbox_drain_tenant(tenant_id=tenant.pk).sent == 2
    assert events_in_clickhouse(tenant.pk) == 2
    assert events_naming(tenant.pk, user_ids=[bob.pk], document_ids=[document_id]) == 0


def test_a_batch_emptied_by_an_erasure_is_dropped_not_sent(clickhouse_db, tenant):
    bob = TenantUserFactory(tenant=tenant, email="bob@acme.example")
    with db.tenant_context(tenant.pk):
        recorder.record_event(tenant=tenant, event_type=events.SIGN_IN, user=bob)
    assert services._claim_batch(tenant.pk, 100).size == 1
    plan = ErasurePlan(str(tenant.pk), "user", str(bob.pk), user_ids=[str(bob.pk)])
    with db.tenant_context(tenant.pk), connection.cursor() as cursor:
        postgres.rows_erase(cursor, plan, tables={"events_outbox_batch"})
        EventOutboxBatch.objects.update(claimed_at=None)
    assert services.outbox_drain_tenant(tenant_id=tenant.pk).sent == 0
    assert events_in_clickhouse(tenant.pk) == 0
    with db.tenant_context(tenant.pk):
        assert not EventOutboxBatch.objects.exists()
