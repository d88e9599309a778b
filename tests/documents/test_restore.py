"""Glacier restore against the real SeaweedFS server, which refuses restore_object (405) and
serves Glacier objects directly: the refusal is handled, and the periodic check updates state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from documents import restore, services
from documents.models import AccessAction, DocumentAccess, RestoreStatus, StorageClass
from documents.tasks import check_restores_for_tenant
from tenants import db
from tests.documents.stored_documents import enable_versioning, put_document, reload, set_restore

GLACIER = StorageClass.GLACIER


@pytest.fixture
def s3(s3_server, s3_bucket):
    client = s3_server.client()
    enable_versioning(client, s3_bucket)
    return client


def test_restore_request_calls_the_server_and_handles_its_refusal(
    s3, s3_bucket, tenant, tenant_user
):
    document = put_document(s3, s3_bucket, tenant, storage_class=GLACIER)

    with db.tenant_context(tenant.pk):
        result = restore.document_restore_request(document=document, requested_by=tenant_user)
        log = DocumentAccess.objects.get(document=document)

    # The server's own answer (405 MethodNotAllowed) reached the user, then a GET proved the
    # object readable, so the document counts as restored, with no expiry.
    assert result.status == RestoreStatus.READY
    assert "does not restore from Glacier (MethodNotAllowed)" in result.message
    restored = reload(document)
    assert restored.restore_status == RestoreStatus.READY
    assert restored.restore_requested_at is not None
    assert restored.restore_expires_at is None
    assert restored.storage_class == GLACIER
    assert (log.action, log.user_id) == (AccessAction.RESTORE_REQUEST, tenant_user.pk)


def test_a_glacier_document_is_downloadable_only_once_restored(s3, s3_bucket, tenant):
    document = put_document(s3, s3_bucket, tenant, storage_class=GLACIER)
    assert not services.document_is_downloadable(document)
    with db.tenant_context(tenant.pk):
        restore.document_restore_request(document=document)
    assert services.document_is_downloadable(reload(document))
    expired = reload(document)
    expired.restore_expires_at = timezone.now() - timedelta(seconds=1)
    assert not services.document_is_downloadable(expired)
    assert services.document_is_downloadable(put_document(s3, s3_bucket, tenant))


def test_restore_request_twice_asks_once(s3, s3_bucket, tenant):
    document = put_document(s3, s3_bucket, tenant, storage_class=GLACIER)
    with db.tenant_context(tenant.pk):
        restore.document_restore_request(document=document)
        again = restore.document_restore_request(document=document)
        assert DocumentAccess.objects.filter(document=document).count() == 1
    assert again == restore.RestoreResult(RestoreStatus.READY, "This document is already restored.")


def test_restore_request_refuses_a_document_not_in_glacier(s3, s3_bucket, tenant):
    document = put_document(s3, s3_bucket, tenant, storage_class=StorageClass.STANDARD_IA)
    with db.tenant_context(tenant.pk), pytest.raises(restore.RestoreError, match="not archived"):
        restore.document_restore_request(document=document)
    assert reload(document).restore_status == RestoreStatus.NONE


def test_restore_request_of_another_tenants_document_is_refused(
    s3, s3_bucket, tenant, other_tenant
):
    theirs = put_document(s3, s3_bucket, other_tenant, storage_class=GLACIER)
    with db.tenant_context(tenant.pk), pytest.raises(db.TenantContextError):
        restore.document_restore_request(document=theirs)
    with pytest.raises(db.TenantContextError):
        restore.document_restore_request(document=theirs)  # no context at all
    assert reload(theirs).restore_status == RestoreStatus.NONE


def test_restore_check_marks_a_requested_restore_ready_once_the_object_is_readable(
    s3, s3_bucket, tenant
):
    # As left by an S3 that accepted the request (202); SeaweedFS never sends a Restore
    # header, so the check proves readability with a GET instead.
    document = put_document(s3, s3_bucket, tenant, storage_class=GLACIER)
    set_restore(
        document, restore_status=RestoreStatus.REQUESTED, restore_requested_at=timezone.now()
    )
    untouched = put_document(s3, s3_bucket, tenant, storage_class=GLACIER)

    states = check_restores_for_tenant.apply(kwargs={"tenant_id": str(tenant.pk)}).get()

    assert states == {RestoreStatus.READY: 1}
    assert reload(document).restore_status == RestoreStatus.READY
    assert reload(untouched).restore_status == RestoreStatus.NONE


def test_restore_check_clears_a_restore_whose_copy_has_expired(s3, s3_bucket, tenant):
    document = put_document(s3, s3_bucket, tenant, storage_class=GLACIER)
    set_restore(
        document,
        restore_status=RestoreStatus.READY,
        restore_expires_at=timezone.now() - timedelta(hours=1),
    )
    with db.tenant_context(tenant.pk):
        assert restore.document_restore_check(document=reload(document)) == RestoreStatus.NONE
    assert reload(document).restore_expires_at is None


def test_restore_check_for_one_tenant_leaves_the_others_alone(s3, s3_bucket, tenant, other_tenant):
    theirs = put_document(s3, s3_bucket, other_tenant, storage_class=GLACIER)
    set_restore(theirs, restore_status=RestoreStatus.REQUESTED)

    assert check_restores_for_tenant.apply(kwargs={"tenant_id": str(tenant.pk)}).get() == {}
    assert reload(theirs).restore_status == RestoreStatus.REQUESTED


def test_restore_header_is_parsed_as_aws_sends_it():
    assert restore.parse_restore_header('ongoing-request="true"') == (True, None)
    assert restore.parse_restore_header(
        'ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"'
    ) == (False, datetime(2012, 12, 21, tzinfo=UTC))
    assert restore.parse_restore_header(None) is None
    assert restore.parse_restore_header("garbage") is None


def test_restore_check_skips_a_ready_copy_that_never_expires(s3, s3_bucket, tenant, monkeypatch):
    document = put_document(s3, s3_bucket, tenant, storage_class=GLACIER)
    set_restore(document, restore_status=RestoreStatus.READY, restore_expires_at=None)
    monkeypatch.setattr(restore, "document_restore_check", pytest.fail)  # must not be called

    assert check_restores_for_tenant.apply(kwargs={"tenant_id": str(tenant.pk)}).get() == {}
    assert reload(document).restore_status == RestoreStatus.READY
