"""Retention: held documents are refused with the rule named, the rest erased, and the held part
erased by the scheduled job once the rule's date has passed (the clock moved)."""

from __future__ import annotations

import datetime as dt

import pytest

from documents.models import Document
from privacy import tasks
from privacy.models import ErasureRequest, ErasureStatus, RetentionRule, SubjectRecord
from tenants import db
from tests.privacy.conftest import erase, object_versions, upload_versions

pytestmark = pytest.mark.committed


def test_kyc_documents_are_held_until_five_years_after_the_relationship_then_erased(
    versioned_bucket, clickhouse_db, tenant, staff_user, approver
):
    RetentionRule.objects.update_or_create(
        document_type="pan",
        defaults={"name": "KYC: 5 years after the relationship ends", "years": 5},
    )
    ended = dt.date.today() - dt.timedelta(days=365)
    with db.tenant_context(tenant.pk):
        SubjectRecord.objects.create(
            tenant=tenant, kind="borrower", ref="CUST-K", relationship_ended_on=ended
        )
    kyc = upload_versions(tenant, subject_ref="CUST-K", kind="pan", versions=1)
    statement = upload_versions(tenant, subject_ref="CUST-K", versions=1)
    kyc_folder = kyc.storage_key.rsplit("/", 1)[0] + "/"

    request, receipt = erase(
        tenant, kind="borrower", ref="CUST-K", staff=staff_user, approver=approver
    )

    until = ended.replace(year=ended.year + 5)
    assert receipt["held"] == [
        {
            "document_id": str(kyc.pk),
            "document_type": "pan",
            "rule": "KYC: 5 years after the relationship ends",
            "until": until.isoformat(),
        }
    ]
    with db.tenant_context(tenant.pk):
        assert Document.objects.filter(pk=kyc.pk).exists()
        assert not Document.objects.filter(pk=statement.pk).exists()
        held = ErasureRequest.objects.get(pk=request.pk)
    assert held.status == ErasureStatus.HELD and held.next_run_at.date() == until
    assert object_versions(kyc_folder)

    # The day before, the job leaves it; once the date has passed it erases it.
    assert tasks.erase_due_at(held.next_run_at - dt.timedelta(days=1)) == 0
    assert tasks.erase_due_at(held.next_run_at + dt.timedelta(days=1)) == 1

    with db.tenant_context(tenant.pk):
        assert not Document.objects.filter(pk=kyc.pk).exists()
        done = ErasureRequest.objects.get(pk=request.pk)
    assert done.status == ErasureStatus.DONE and done.next_run_at is None
    assert object_versions(kyc_folder) == []
    assert len(done.receipt["runs"]) == 2 and done.receipt["runs"][1]["held"] == []


def test_a_legal_hold_on_the_subject_holds_everything_without_a_date(
    versioned_bucket, clickhouse_db, tenant, staff_user, approver
):
    with db.tenant_context(tenant.pk):
        SubjectRecord.objects.create(
            tenant=tenant,
            kind="borrower",
            ref="CUST-H",
            legal_hold=True,
            legal_hold_reason="court order 12",
        )
    statement = upload_versions(tenant, subject_ref="CUST-H", versions=1)
    request, receipt = erase(
        tenant, kind="borrower", ref="CUST-H", staff=staff_user, approver=approver
    )
    assert receipt["held"][0]["rule"] == "legal hold on the subject: court order 12"
    assert receipt["held"][0]["until"] is None
    with db.tenant_context(tenant.pk):
        assert Document.objects.filter(pk=statement.pk).exists()
        assert ErasureRequest.objects.get(pk=request.pk).next_run_at is None
