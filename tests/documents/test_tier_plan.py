"""The tiering plan: what `tier_documents --dry-run` counts is what tiering then moves, and it is
read from the partial index `documents_tier_due`, not from each document's versions."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.db.models import Count
from django.utils import timezone

from documents import tiering
from documents.models import Document, DocumentVersion, StorageClass
from tenants import db
from tests.documents.stored_documents import enable_versioning, put_document

IA, GLACIER = StorageClass.STANDARD_IA, StorageClass.GLACIER


def plan_of(tenant) -> dict[str, int]:
    with db.tenant_context(tenant.pk):
        return tiering.tier_plan(tenant_id=tenant.pk)


def test_the_plan_counts_exactly_what_tiering_then_moves(s3_server, s3_bucket, tenant):
    s3 = s3_server.client()
    enable_versioning(s3, s3_bucket)
    for days, storage_class in [(0, "STANDARD"), (31, "STANDARD"), (89, "STANDARD")]:
        put_document(s3, s3_bucket, tenant, days_old=days, storage_class=storage_class)
    for days, storage_class in [(95, "STANDARD"), (400, "STANDARD"), (60, IA), (120, IA)]:
        put_document(s3, s3_bucket, tenant, days_old=days, storage_class=storage_class)
    put_document(s3, s3_bucket, tenant, days_old=300, storage_class=GLACIER)  # coldest already
    put_document(s3, s3_bucket, tenant, days_old=120, deleted=True)  # soft-deleted: left alone
    replaced = put_document(s3, s3_bucket, tenant, days_old=200)
    claimed = put_document(s3, s3_bucket, tenant, days_old=200)
    with db.tenant_context(tenant.pk):
        # A new version stored now: the trigger makes the document young again.
        DocumentVersion.objects.create(
            tenant=tenant,
            document=replaced,
            number=2,
            original_filename="pan.pdf",
            content_type="application/pdf",
            size_bytes=1,
            sha256="1" * 64,
            storage_key=replaced.storage_key,
        )
        # Claimed by a run still at work: not due.
        Document.objects.filter(pk=claimed.pk).update(tiering_started_at=timezone.now())

    plan = plan_of(tenant)
    with db.tenant_context(tenant.pk):
        report = tiering.documents_tier_due(tenant_id=tenant.pk)

    assert plan == {IA: 2, GLACIER: 3}
    assert dict(report.moved_to) == plan
    assert plan_of(tenant) == {}


@pytest.mark.committed
def test_the_plan_reads_the_tier_due_index_on_a_table_of_mostly_fresh_documents(tenant):
    now = timezone.now()
    with db.tenant_context(tenant.pk):
        rows = []
        for n in range(3000):
            document_id = uuid.uuid4()
            rows.append(
                Document(
                    id=document_id,
                    tenant=tenant,
                    document_type="pan",
                    original_filename=f"{n}.pdf",
                    content_type="application/pdf",
                    size_bytes=1000,
                    sha256=f"{n:064d}",
                    storage_key=f"tenants/{tenant.pk}/documents/{document_id}.pdf",
                    storage_class=GLACIER if n % 3 == 0 else StorageClass.STANDARD,
                )
            )
        Document.objects.bulk_create(rows)
        old = [row.pk for row in rows[1:7] if row.storage_class == StorageClass.STANDARD]
        Document.objects.filter(pk__in=old).update(
            created_at=now - timedelta(days=100), stored_at=now - timedelta(days=100)
        )
    with connections["owner"].cursor() as cursor:
        cursor.execute("ANALYZE documents")

    with db.tenant_context(tenant.pk):
        due = tiering.documents_due(tenant.pk, now).order_by().values("target")
        explained = due.annotate(due=Count("*")).explain()
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM documents WHERE tenant_id = %s", [tenant.pk])
            assert cursor.fetchone()[0] == 3000

    assert "documents_tier_due" in explained, explained
    assert "document_versions" not in explained, explained
    assert plan_of(tenant) == {GLACIER: len(old)}
