"""The usage rows the triggers keep equal what summing the documents and versions gives, through
every kind of write; another tenant can neither read nor change them; the migration backfills
them from the rows already there."""

from __future__ import annotations

import io
import uuid

import pytest
from django.db import DatabaseError, connection, connections, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Count, Sum

from documents import services
from documents.models import Document, DocumentUsage, DocumentVersion, StorageClass, VersionUsage
from privacy.erasure import postgres
from privacy.erasure.plan import ErasurePlan
from tenants import db
from tests.documents.conftest import pdf_bytes, upload


def summed(tenant) -> tuple[dict, tuple]:
    """What the admin's summary once computed: sums over every row."""
    with db.tenant_context(tenant.pk):
        documents = Document.objects.for_tenant(tenant).order_by()
        by_class = {
            row["storage_class"]: (row["n"], row["b"])
            for row in documents.values("storage_class").annotate(n=Count("*"), b=Sum("size_bytes"))
        }
        versions = DocumentVersion.objects.for_tenant(tenant).aggregate(
            n=Count("*"), b=Sum("size_bytes")
        )
    return by_class, (versions["n"], versions["b"] or 0)


def kept(tenant) -> tuple[dict, tuple]:
    """What the triggers keep (classes emptied out are left as zero rows)."""
    with db.tenant_context(tenant.pk):
        by_class = {
            u.storage_class: (u.documents, u.current_bytes)
            for u in DocumentUsage.objects.for_tenant(tenant)
            if u.documents or u.current_bytes
        }
        versions = VersionUsage.objects.for_tenant(tenant).first()
    return by_class, (versions.versions, versions.stored_bytes) if versions else (0, 0)


def test_usage_stays_exact_through_upload_replace_tiering_delete_and_erasure(
    s3_bucket, tenant, other_tenant
):
    first = upload(tenant, pdf_bytes(size=3000))
    second = upload(tenant, pdf_bytes(size=5000))
    third = upload(tenant, pdf_bytes(size=7000))
    upload(other_tenant, pdf_bytes(size=11000))
    theirs = kept(other_tenant)
    assert kept(tenant) == summed(tenant) == ({"STANDARD": (3, 15000)}, (3, 15000))

    with db.tenant_context(tenant.pk):  # a new version: current bytes change, versions add up
        services.document_replace(
            document=first, file=io.BytesIO(pdf_bytes(size=4000)), filename="new.pdf"
        )
    assert kept(tenant) == summed(tenant) == ({"STANDARD": (3, 16000)}, (4, 19000))

    with db.tenant_context(tenant.pk):  # one statement moving two rows between classes
        Document.objects.for_tenant(tenant).filter(pk__in=[second.pk, third.pk]).update(
            storage_class=StorageClass.GLACIER
        )
    assert kept(tenant) == summed(tenant)
    assert kept(tenant)[0] == {"STANDARD": (1, 4000), "GLACIER": (2, 12000)}

    with db.tenant_context(tenant.pk):  # soft delete: the rows and objects are kept
        services.document_delete(document=Document.objects.get(pk=second.pk))
    assert kept(tenant) == summed(tenant)

    # The erasure's statements (privacy/erasure/postgres.py), as an erasure runs them.
    plan = ErasurePlan(
        tenant_id=str(tenant.pk),
        kind="borrower",
        ref="CUST-1",
        document_ids=[str(first.pk), str(second.pk)],
    )
    with db.tenant_context(tenant.pk), connection.cursor() as cursor:
        postgres.rows_erase(cursor, plan)
    assert kept(tenant) == summed(tenant) == ({"GLACIER": (1, 7000)}, (1, 7000))
    assert kept(other_tenant) == summed(other_tenant) == theirs


def test_another_tenant_can_neither_read_nor_change_the_usage(s3_bucket, tenant, other_tenant):
    upload(tenant, pdf_bytes(size=3000))
    before = kept(tenant)
    assert before[0]

    with db.tenant_context(other_tenant.pk), connection.cursor() as cursor:
        assert not DocumentUsage.objects.filter(tenant_id=tenant.pk).exists()
        assert not VersionUsage.objects.filter(tenant_id=tenant.pk).exists()
        cursor.execute(
            "UPDATE document_usage SET documents = 0, current_bytes = 0 WHERE tenant_id = %s",
            [tenant.pk],
        )
        assert cursor.rowcount == 0
        cursor.execute("DELETE FROM document_version_usage WHERE tenant_id = %s", [tenant.pk])
        assert cursor.rowcount == 0
        with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
            cursor.execute(
                "INSERT INTO document_usage (tenant_id, storage_class, documents, current_bytes)"
                " VALUES (%s, 'GLACIER', 1000000, 1)",
                [tenant.pk],
            )
    with connection.cursor() as cursor:  # no tenant context: no rows at all
        cursor.execute("SELECT count(*) FROM document_usage")
        assert cursor.fetchone()[0] == 0
    assert kept(tenant) == before == summed(tenant)


def test_tenant_export_leaves_the_derived_usage_rows_out():
    from backups.services.tenant_export import tenant_models_in_fk_order

    models = tenant_models_in_fk_order()
    assert Document in models and DocumentVersion in models
    assert DocumentUsage not in models and VersionUsage not in models


@pytest.mark.committed
def test_the_migration_backfills_usage_and_stored_at_from_existing_rows(committed_db):
    owner = connections["owner"]
    latest = MigrationExecutor(owner).loader.graph.leaf_nodes()
    before = [("documents", "0019_schedule_replication_sweep")]
    executor = MigrationExecutor(owner)
    executor.migrate(before)
    try:
        old_apps = executor.loader.project_state(before).apps
        Tenant = old_apps.get_model("tenants", "Tenant")
        OldDocument = old_apps.get_model("documents", "Document")
        OldVersion = old_apps.get_model("documents", "DocumentVersion")
        tenant = Tenant.objects.using("owner").create(name="Backfill", subdomain="backfill")
        with db.tenant_context(tenant.pk):
            for number, size in enumerate((100, 200, 300)):
                document = OldDocument.objects.create(
                    id=uuid.uuid4(),
                    tenant_id=tenant.pk,
                    document_type="pan",
                    original_filename="pan.pdf",
                    content_type="application/pdf",
                    size_bytes=size,
                    sha256=f"{number:064d}",
                    storage_key=f"tenants/{tenant.pk}/{number}.pdf",
                    storage_class="GLACIER" if number == 2 else "STANDARD",
                )
                for version in (1, 2) if number == 0 else (1,):
                    OldVersion.objects.create(
                        tenant_id=tenant.pk,
                        document_id=document.pk,
                        number=version,
                        original_filename="pan.pdf",
                        content_type="application/pdf",
                        size_bytes=size,
                        sha256=f"{number:064d}",
                        storage_key=document.storage_key,
                    )
            # Stored long ago; the first document's second version much later.
            cursor = connection.cursor()
            cursor.execute(
                "UPDATE documents SET created_at = '2020-01-01T00:00:00Z' WHERE tenant_id = %s",
                [tenant.pk],
            )
            cursor.execute(
                "UPDATE document_versions SET created_at = CASE WHEN number = 2"
                " THEN timestamptz '2021-06-01T00:00:00Z' ELSE timestamptz"
                " '2020-01-01T00:00:00Z' END WHERE tenant_id = %s",
                [tenant.pk],
            )
        executor = MigrationExecutor(owner)
        executor.migrate(latest)

        assert kept(tenant) == summed(tenant)
        assert kept(tenant) == ({"STANDARD": (2, 300), "GLACIER": (1, 300)}, (4, 700))
        with db.tenant_context(tenant.pk):
            stored = sorted(str(d.stored_at.date()) for d in Document.objects.for_tenant(tenant.pk))
        assert stored == ["2020-01-01", "2020-01-01", "2021-06-01"]
    finally:
        MigrationExecutor(owner).migrate(latest)
