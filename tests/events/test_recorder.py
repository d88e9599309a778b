"""record_event: one outbox row in the caller's transaction and tenant context, under RLS."""

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

from documents import events as document_events
from metis.events import recorder
from metis.events.models import EventOutbox
from tenants import db, events
from tests.conftest import host_of
from tests.factories import TEST_PASSWORD


def recorded(tenant) -> list[tuple]:
    with db.tenant_context(tenant.pk):
        return list(
            EventOutbox.objects.for_tenant(tenant)
            .order_by("occurred_at")
            .values_list("event_type", "user_id", "staff_id", "data")
        )


def test_record_event_writes_one_pending_outbox_row(tenant, tenant_user):
    with db.tenant_context(tenant.pk):
        event = recorder.record_event(
            tenant=tenant,
            event_type=document_events.UPLOADED,
            data={"document_type": "pan"},
            user=tenant_user,
        )
    assert event.status == "pending"
    assert recorded(tenant)[-1] == (
        document_events.UPLOADED,
        tenant_user.pk,
        None,
        {"document_type": "pan"},
    )


def test_record_event_refuses_bad_input_and_writes_nothing(tenant, other_tenant_user):
    with db.tenant_context(tenant.pk):
        with pytest.raises(ValueError, match="unknown event type"):
            recorder.record_event(tenant=tenant, event_type="document.exploded")
        with pytest.raises(ValueError, match="larger than"):
            recorder.record_event(tenant=tenant, event_type=events.SIGN_IN, data={"x": "y" * 20000})
        with pytest.raises(ValueError, match="another tenant"):
            recorder.record_event(tenant=tenant, event_type=events.SIGN_IN, user=other_tenant_user)
    assert recorded(tenant) == []


def test_record_event_requires_the_events_tenant_context(tenant, other_tenant):
    with pytest.raises(db.TenantContextError, match="no tenant context"):
        recorder.record_event(tenant=tenant, event_type=events.SIGN_IN)
    with (
        db.tenant_context(other_tenant.pk),
        pytest.raises(db.TenantContextError, match="is for tenant"),
    ):
        recorder.record_event(tenant=tenant, event_type=events.SIGN_IN)
    assert recorded(tenant) == [] and recorded(other_tenant) == []


def test_each_app_registers_its_own_event_types():
    types = recorder.event_types()
    assert {events.SIGN_IN, events.STAFF_TENANT_ACCESS, document_events.UPLOADED} <= types
    assert {"backup.run_succeeded", "backup.run_failed"} <= types
    assert recorder.register(events.SIGN_IN) == events.SIGN_IN  # the same declaration again
    with pytest.raises(ValueError, match="already declared"):
        recorder.register(events.SIGN_IN, data=("something_else",))
    with pytest.raises(ValueError, match="lowercase"):
        recorder.register("NoDot")


def test_outbox_rows_are_invisible_to_other_tenants(tenant, other_tenant):
    with db.tenant_context(tenant.pk):
        recorder.record_event(tenant=tenant, event_type=events.SIGN_IN)
    with db.tenant_context(other_tenant.pk):
        assert EventOutbox.objects.count() == 0  # the ORM, without our filter
        with connection.cursor() as cursor:  # raw SQL as the app role
            cursor.execute("SELECT count(*) FROM analytics_event_outbox")
            assert cursor.fetchone()[0] == 0
    with connection.cursor() as cursor:  # no context: nothing, and no writes
        cursor.execute("SELECT count(*) FROM analytics_event_outbox")
        assert cursor.fetchone()[0] == 0
    with db.tenant_context(tenant.pk):
        assert EventOutbox.objects.count() == 1


def test_sign_in_sign_out_and_failed_sign_in_are_recorded(tenant, tenant_user):
    client = Client(HTTP_HOST=host_of(tenant))
    client.post("/login/", {"email": tenant_user.email, "password": "wrong"})
    client.post("/login/", {"email": tenant_user.email, "password": TEST_PASSWORD})
    client.post("/logout/")
    assert recorded(tenant) == [
        (events.SIGN_IN_FAILED, None, None, {"email_domain": "acme.example"}),
        (events.SIGN_IN, tenant_user.pk, None, {}),
        (events.SIGN_OUT, tenant_user.pk, None, {}),
    ]


def test_staff_choosing_a_tenant_records_a_staff_access_event(staff_client, staff_user, tenant):
    response = staff_client.post("/admin/tenant-context/", {"tenant": str(tenant.pk)})
    assert response.status_code == 302
    assert recorded(tenant) == [
        (events.STAFF_TENANT_ACCESS, None, staff_user.pk, {"path": "/admin/tenant-context/"})
    ]


def test_every_event_type_fits_the_clickhouse_constraint():
    import re

    for name in recorder.event_types():
        assert re.match(r"^[a-z][a-z_]*(\.[a-z_]+)+$", name), name
    assert settings.ANALYTICS_OUTBOX_BATCH_SIZE > 0
