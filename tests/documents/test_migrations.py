"""The tenant-consistent foreign keys migration keeps every row, and stops, naming the table and
the count, when a row already references another tenant's row."""

from contextlib import contextmanager

import pytest
from django.db import connections, transaction
from django.db.migrations.executor import MigrationExecutor

from documents.models import DocumentAccess
from tenants import db
from tenants.foreign_keys import CrossTenantReferenceError

BEFORE = [("documents", "0010_schedule_tiering")]


@contextmanager
def legacy_tenant_context(tenant):
    """The tenant context of the schema before the seal: policies that trust a plain setting."""
    with transaction.atomic(using="owner"), connections["owner"].cursor() as cursor:
        cursor.execute("SELECT set_config('app.current_tenant', %s, true)", [str(tenant.pk)])
        yield


def test_migration_refuses_cross_tenant_rows_and_keeps_the_rest(committed_db):
    owner = connections["owner"]
    latest = MigrationExecutor(owner).loader.graph.leaf_nodes()
    executor = MigrationExecutor(owner)
    executor.migrate(BEFORE)
    old_apps = executor.loader.project_state(BEFORE).apps
    Tenant = old_apps.get_model("tenants", "Tenant")
    Document = old_apps.get_model("documents", "Document")
    Access = old_apps.get_model("documents", "DocumentAccess")
    a, b = (
        Tenant.objects.using("owner").create(name=name, subdomain=name) for name in ("aa", "bb")
    )

    def document_create(tenant):
        with legacy_tenant_context(tenant):
            return Document.objects.using("owner").create(
                tenant_id=tenant.pk,
                document_type="pan",
                original_filename="pan.pdf",
                content_type="application/pdf",
                size_bytes=1,
                sha256="0" * 64,
                storage_key=f"tenants/{tenant.pk}/pan.pdf",
            )

    a_document, b_document = document_create(a), document_create(b)
    with legacy_tenant_context(a):
        kept = Access.objects.using("owner").create(
            tenant_id=a.pk, document_id=a_document.pk, action="download"
        )
        # What the old single-column key allowed: A's row pointing at B's document.
        crossing = Access.objects.using("owner").create(
            tenant_id=a.pk, document_id=b_document.pk, action="download"
        )
    try:
        with pytest.raises(CrossTenantReferenceError) as refused:
            MigrationExecutor(owner).migrate(latest)
        assert "document_access_log.document_id: 1 row(s)" in str(refused.value)
        with legacy_tenant_context(a):  # nothing deleted
            assert Access.objects.using("owner").filter(pk=crossing.pk).exists()
    finally:
        with legacy_tenant_context(a):
            Access.objects.using("owner").filter(pk=crossing.pk).delete()
        MigrationExecutor(owner).migrate(latest)

    with db.tenant_context(a.pk):  # as the app role, on the migrated table
        assert list(DocumentAccess.objects.values_list("pk", flat=True)) == [kept.pk]
