"""Admin actions (documents.admin_actions), called as the admin calls them: in the staff
member's chosen tenant context, with a request carrying messages."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.messages.storage.cookie import CookieStorage
from django.test import RequestFactory

from documents import admin_actions
from documents.models import Document, RestoreStatus, StorageClass
from tenants import db
from tests.documents.stored_documents import (
    enable_versioning,
    put_document,
    reload,
    storage_class_of,
)


@pytest.fixture
def s3(s3_server, s3_bucket):
    client = s3_server.client()
    enable_versioning(client, s3_bucket)
    return client


@pytest.fixture
def staff_request(staff_user):
    request = RequestFactory().post("/admin/documents/document/")
    request.user = staff_user
    request._messages = CookieStorage(request)
    return request


def run_action(action, request, documents, *, tenant) -> list[str]:
    model_admin = admin.ModelAdmin(Document, admin.site)
    with db.tenant_context(tenant.pk):
        queryset = Document.objects.for_tenant(tenant).filter(pk__in=[d.pk for d in documents])
        action(model_admin, request, queryset)
    return [str(message) for message in request._messages]


def test_request_restore_action_reports_each_document(s3, s3_bucket, tenant, staff_request):
    archived = put_document(s3, s3_bucket, tenant, storage_class=StorageClass.GLACIER)
    current = put_document(s3, s3_bucket, tenant)

    notes = run_action(
        admin_actions.request_restore, staff_request, [archived, current], tenant=tenant
    )

    assert sorted(notes) == sorted(
        [
            f"{archived}: This storage server does not restore from Glacier (MethodNotAllowed); "
            "the document is readable as it is.",
            f"{current}: This document is not archived in Glacier: it can be downloaded.",
        ]
    )
    assert reload(archived).restore_status == RestoreStatus.READY


def test_change_tier_actions_move_the_object_both_ways(s3, s3_bucket, tenant, staff_request):
    document = put_document(s3, s3_bucket, tenant)

    notes = run_action(
        admin_actions.change_tier_to_glacier, staff_request, [document], tenant=tenant
    )
    assert notes == ["1 document(s) moved to Glacier."]
    assert storage_class_of(s3, s3_bucket, document.storage_key) == StorageClass.GLACIER

    run_action(admin_actions.change_tier_to_ia, staff_request, [document], tenant=tenant)
    assert storage_class_of(s3, s3_bucket, document.storage_key) == StorageClass.STANDARD_IA
    run_action(admin_actions.change_tier_to_standard, staff_request, [document], tenant=tenant)
    assert storage_class_of(s3, s3_bucket, document.storage_key) == StorageClass.STANDARD
    assert reload(document).storage_class == StorageClass.STANDARD


@pytest.mark.committed
def test_actions_in_the_all_tenants_mode_change_nothing(s3, s3_bucket, tenant, staff_request):
    document = put_document(s3, s3_bucket, tenant, storage_class=StorageClass.GLACIER)
    model_admin = admin.ModelAdmin(Document, admin.site)
    with db.all_tenants_context():
        queryset = Document.objects.filter(pk=document.pk)
        admin_actions.request_restore(model_admin, staff_request, queryset)
        admin_actions.change_tier_to_standard(model_admin, staff_request, queryset)
    notes = [str(message) for message in staff_request._messages]
    assert any("its own tenant context" in note for note in notes)
    assert reload(document).restore_status == RestoreStatus.NONE
    assert storage_class_of(s3, s3_bucket, document.storage_key) == StorageClass.GLACIER
