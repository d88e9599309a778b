"""Outbox admin: staff see one tenant's events and requeue rejected ones."""

from metis.events.models import EventOutbox, EventOutboxBatch, OutboxStatus
from tenants import db, events
from tests.factories import event_record


def test_staff_see_only_the_chosen_tenants_outbox_and_requeue_rejected(
    staff_client, tenant, other_tenant
):
    event_record(tenant=other_tenant, event_type=events.SIGN_OUT)
    with db.tenant_context(tenant.pk):
        rejected = EventOutbox.objects.create(
            tenant=tenant, event_type="Bad", status=OutboxStatus.REJECTED, last_error="Code: 469."
        )
    staff_client.post("/admin/tenant-context/", {"tenant": str(tenant.pk)})

    page = staff_client.get("/admin/events/eventoutbox/")
    assert page.status_code == 200
    shown = {row.pk for row in page.context["cl"].result_list}
    with db.tenant_context(tenant.pk):
        own = set(EventOutbox.objects.values_list("pk", flat=True))
    assert shown == own and rejected.pk in shown  # the other tenant's sign-out is not there

    response = staff_client.post(
        "/admin/events/eventoutbox/",
        {"action": "requeue_rejected", "_selected_action": [str(rejected.pk)]},
    )
    assert response.status_code == 302
    with db.tenant_context(tenant.pk):
        assert EventOutbox.objects.get(pk=rejected.pk).status == OutboxStatus.PENDING


def test_staff_see_the_chosen_tenants_batches_in_flight(staff_client, tenant, other_tenant):
    from analytics import services

    for owner in (tenant, other_tenant):
        event_record(tenant=owner, event_type=events.SIGN_IN)
        services._claim_batch(owner.pk, 100, orphans=False)
    staff_client.post("/admin/tenant-context/", {"tenant": str(tenant.pk)})

    page = staff_client.get("/admin/events/eventoutboxbatch/")

    assert page.status_code == 200
    with db.tenant_context(tenant.pk):
        own = set(EventOutboxBatch.objects.values_list("pk", flat=True))
    assert {row.pk for row in page.context["cl"].result_list} == own and len(own) == 1
    (token,) = own
    assert (
        staff_client.post(
            f"/admin/events/eventoutboxbatch/{token}/delete/", {"post": "yes"}
        ).status_code
        == 403
    )
