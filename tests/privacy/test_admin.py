"""The privacy admin: retention rules edited by staff; subjects, holds and erasure requests
under the chosen tenant; approval never by the asker (the service's message shown); rejection;
the receipt downloaded as stored."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.test import Client

from privacy import services
from privacy.models import (
    DocumentLegalHold,
    ErasureRequest,
    ErasureStatus,
    RetentionRule,
    SubjectRecord,
)
from tenants import db
from tests.documents.conftest import upload
from tests.privacy.conftest import make_user
from tests.support import staff

ADMIN = "/admin/privacy/"
REQUESTS = f"{ADMIN}erasurerequest/"


def choose(client, tenant) -> None:
    client.post("/admin/tenant-context/", {"tenant": str(tenant.pk)})


@pytest.fixture
def second_staff_client(staff_user_model):
    """Another staff member, signed in with a second factor: the one who may approve."""
    user = staff_user_model.objects.create_user(
        "second", "second@metis.example", "x", is_staff=True, is_superuser=True
    )
    client = Client(HTTP_HOST=settings.METIS_BASE_DOMAIN)
    client.force_login(user)
    staff.mark_verified(client, user)
    return client


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_staff_edit_a_retention_rule(staff_client):
    rule = RetentionRule.objects.get(document_type="pan")
    response = staff_client.post(
        f"{ADMIN}retentionrule/{rule.pk}/change/",
        {"name": "KYC: 8 years", "document_type": "pan", "years": 8, "basis": "upload"},
    )
    assert response.status_code == 302, response.content.decode()[-1500:]
    rule.refresh_from_db()
    assert (rule.name, rule.years, rule.basis) == ("KYC: 8 years", 8, "upload")


def test_a_subject_record_is_the_chosen_tenants_and_a_legal_hold_needs_a_reason(
    staff_client, tenant, other_tenant
):
    choose(staff_client, tenant)
    fields = {"kind": "borrower", "ref": "CUST-1", "relationship_ended_on": "2024-03-31"}
    refused = staff_client.post(f"{ADMIN}subjectrecord/add/", {**fields, "legal_hold": "on"})
    assert refused.status_code == 200
    assert "Give the reason for the legal hold." in refused.content.decode()
    bad_ref = staff_client.post(f"{ADMIN}subjectrecord/add/", {**fields, "ref": "no spaces!"})
    assert bad_ref.status_code == 200
    assert "The subject reference may hold only" in bad_ref.content.decode()
    saved = staff_client.post(
        f"{ADMIN}subjectrecord/add/",
        {**fields, "legal_hold": "on", "legal_hold_reason": "court order 12"},
    )
    assert saved.status_code == 302
    with db.tenant_context(tenant.pk):
        record = SubjectRecord.objects.get()
    assert record.tenant_id == tenant.pk and record.legal_hold_reason == "court order 12"
    choose(staff_client, other_tenant)
    staff_client.get(f"{ADMIN}subjectrecord/")  # shows (and so drops) the pending messages
    assert "CUST-1" not in staff_client.get(f"{ADMIN}subjectrecord/").content.decode()
    assert staff_client.get(f"{ADMIN}subjectrecord/{record.pk}/change/").status_code == 302


def test_staff_place_a_legal_hold_on_one_document(s3_bucket, staff_client, tenant):
    document = upload(tenant)
    choose(staff_client, tenant)
    response = staff_client.post(
        f"{ADMIN}documentlegalhold/add/", {"document": str(document.pk), "reason": "dispute"}
    )
    assert response.status_code == 302, response.content.decode()[-1500:]
    with db.tenant_context(tenant.pk):
        hold = DocumentLegalHold.objects.get()
    assert (hold.document_id, hold.tenant_id, hold.reason) == (document.pk, tenant.pk, "dispute")


def test_a_legal_hold_cannot_name_another_tenants_document(
    s3_bucket, staff_client, tenant, other_tenant
):
    theirs = upload(other_tenant)
    choose(staff_client, tenant)
    response = staff_client.post(
        f"{ADMIN}documentlegalhold/add/", {"document": str(theirs.pk), "reason": "dispute"}
    )
    assert response.status_code == 200  # the form's error: no such document
    with db.tenant_context(tenant.pk):
        assert not DocumentLegalHold.objects.exists()


def test_staff_ask_then_another_approves_and_the_run_is_queued(
    staff_client, staff_user, second_staff_client, tenant, django_capture_on_commit_callbacks
):
    choose(staff_client, tenant)
    asked = staff_client.post(f"{REQUESTS}add/", {"kind": "borrower", "ref": "CUST-9"})
    assert asked.status_code == 302, asked.content.decode()[-1500:]
    with db.tenant_context(tenant.pk):
        erasure = ErasureRequest.objects.get()
    assert erasure.requested_by_staff_id == staff_user.pk and erasure.tenant_id == tenant.pk
    action = {"action": "approve", "_selected_action": [str(erasure.pk)]}

    own = staff_client.post(REQUESTS, action, follow=True)
    refusal = "borrower CUST-9: Another staff member must approve an erasure you asked for."
    assert refusal in messages_of(own)
    with db.tenant_context(tenant.pk):
        assert ErasureRequest.objects.get().status == ErasureStatus.REQUESTED

    choose(second_staff_client, tenant)
    with django_capture_on_commit_callbacks() as queued:
        second_staff_client.post(REQUESTS, action)
    with db.tenant_context(tenant.pk):
        assert ErasureRequest.objects.get().status == ErasureStatus.APPROVED
    assert len(queued) == 1  # privacy.erasure_run, sent once the approval commits


def test_the_add_form_names_a_malformed_reference(staff_client, tenant):
    choose(staff_client, tenant)
    response = staff_client.post(f"{REQUESTS}add/", {"kind": "borrower", "ref": "a b"})
    assert response.status_code == 200
    assert "The subject reference may hold only" in response.content.decode()
    with db.tenant_context(tenant.pk):
        assert not ErasureRequest.objects.exists()


def test_staff_reject_a_request(staff_client, tenant):
    admin = make_user(tenant, "boss@acme.example", is_admin=True)
    with db.tenant_context(tenant.pk):
        erasure = services.erasure_request_create(
            tenant=tenant, kind="borrower", ref="CUST-3", user=admin
        )
    choose(staff_client, tenant)
    response = staff_client.post(
        REQUESTS, {"action": "reject", "_selected_action": [str(erasure.pk)]}, follow=True
    )
    assert "borrower CUST-3: rejected; nothing was erased." in messages_of(response)
    with db.tenant_context(tenant.pk):
        erasure.refresh_from_db()
        assert erasure.status == ErasureStatus.REJECTED
        with pytest.raises(services.ErasureRefused, match="rejected"):
            services.erasure_request_approve(request=erasure, staff=erasure.approved_by_staff)


def test_the_receipt_downloads_as_stored(staff_client, staff_user, tenant, other_tenant):
    receipt = {"runs": [{"erased": {"s3": {"versions": 3}}, "held": []}]}
    with db.tenant_context(tenant.pk):
        erasure = services.erasure_request_create(
            tenant=tenant, kind="borrower", ref="CUST-4", staff=staff_user
        )
        ErasureRequest.objects.filter(pk=erasure.pk).update(receipt=receipt)
    choose(staff_client, tenant)
    listing = staff_client.get(REQUESTS).content.decode()
    assert f"{REQUESTS}{erasure.pk}/receipt/" in listing and "Download receipt (JSON)" in listing
    response = staff_client.get(f"{REQUESTS}{erasure.pk}/receipt/")
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == receipt
    choose(staff_client, other_tenant)
    assert staff_client.get(f"{REQUESTS}{erasure.pk}/receipt/").status_code == 404
