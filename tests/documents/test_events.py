"""Document writes record analytics events in the same transaction, and only then."""

import io

import pytest
from django.db import transaction

from documents import events, services
from metis.events.models import EventOutbox
from tenants import db
from tests.documents.conftest import pdf_bytes, upload


def outbox(tenant) -> list[tuple[str, dict]]:
    with db.tenant_context(tenant.pk):
        # One test transaction: every row has the same occurred_at, so sort for a stable order.
        rows = EventOutbox.objects.for_tenant(tenant)
        return sorted(((row.event_type, row.data) for row in rows), key=repr)


def test_upload_replace_download_and_delete_each_record_an_event(s3_bucket, tenant, tenant_user):
    document = upload(tenant, user=tenant_user)
    with db.tenant_context(tenant.pk):
        services.document_replace(
            document=document, file=io.BytesIO(pdf_bytes("v2")), filename="v2.pdf", user=tenant_user
        )
    with db.tenant_context(tenant.pk):
        services.document_download_url(document=document, user=tenant_user)
    with db.tenant_context(tenant.pk):
        services.document_delete(document=document, user=tenant_user)

    recorded = outbox(tenant)
    assert sorted(event_type for event_type, _ in recorded) == sorted(
        [
            events.UPLOADED,
            events.UPLOADED,
            events.DOWNLOADED,
            events.DELETED,
        ]
    )
    assert all(data["document_id"] == str(document.pk) for _, data in recorded)
    assert all(data["document_type"] == "bank-statement" for _, data in recorded)
    uploads = [data for kind, data in recorded if kind == events.UPLOADED]
    assert sorted(data["version"] for data in uploads) == [1, 2]


def test_an_upload_rolled_back_records_no_event(s3_bucket, tenant):
    with pytest.raises(RuntimeError), transaction.atomic():
        upload(tenant)
        raise RuntimeError("the caller's transaction fails after the upload")
    assert outbox(tenant) == []


def test_a_refused_upload_records_no_event(s3_bucket, tenant):
    with pytest.raises(services.DocumentRejected):
        upload(tenant, b"")
    assert outbox(tenant) == []


def test_tier_change_and_restore_record_events(s3_bucket, tenant):
    from documents import restore, tiering
    from documents.models import StorageClass

    document = upload(tenant)
    with db.tenant_context(tenant.pk):
        tiering.document_tier_change(document=document, storage_class=StorageClass.GLACIER)
        document.refresh_from_db()
        restore.document_restore_request(document=document)

    recorded = outbox(tenant)
    tier_changes = [data for kind, data in recorded if kind == events.TIER_CHANGED]
    assert tier_changes == [
        {
            "document_id": str(document.pk),
            "document_type": "bank-statement",
            "from_class": "STANDARD",
            "to_class": "GLACIER",
        }
    ]
    assert events.RESTORE_REQUESTED in [kind for kind, _ in recorded]
