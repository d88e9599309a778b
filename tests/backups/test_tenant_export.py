"""Per-tenant export and restore: one tenant's rows, and no other tenant's."""

from __future__ import annotations

import json

import pytest

from backups.services import tenant_export
from documents.models import Document, DocumentVersion
from metis.events.models import EventOutbox
from tenants import db as tenant_db
from tenants.models import Tenant, TenantUser
from tests.documents.test_usage import kept, summed
from tests.factories import TenantUserFactory

pytestmark = pytest.mark.django_db(databases=["default", "owner"])


def _populate(tenant, prefix: str, documents: int) -> None:
    user = TenantUserFactory(tenant=tenant, email=f"{prefix}@example.com")
    with tenant_db.tenant_context(tenant.pk):
        for n in range(documents):
            document = Document.objects.create(
                tenant=tenant,
                document_type="pan",
                original_filename=f"{prefix}-{n}.pdf",
                content_type="application/pdf",
                size_bytes=100 + n,
                sha256=f"{n:064d}",
                storage_key=f"tenants/{tenant.pk}/{prefix}-{n}",
                uploaded_by=user,
                metadata={"n": n, "who": prefix},
            )
            DocumentVersion.objects.create(
                tenant=tenant,
                document=document,
                number=1,
                original_filename=f"{prefix}-{n}.pdf",
                content_type="application/pdf",
                size_bytes=100 + n,
                sha256=f"{n:064d}",
                storage_key=f"tenants/{tenant.pk}/{prefix}-{n}-v1",
            )


def _snapshot(tenant_id) -> dict[str, list[str]]:
    """Every row of the tenant, per tenant table, as canonical JSON (what RLS lets it see)."""
    from django.db import connection

    tables = [m._meta.db_table for m in tenant_export.tenant_models_in_fk_order()]
    with tenant_db.tenant_context(tenant_id), connection.cursor() as cursor:
        snapshot = {}
        for table in tables:
            cursor.execute(f'SELECT to_jsonb(t) FROM "{table}" t')
            snapshot[table] = sorted(
                json.dumps(row, sort_keys=True) for (row,) in cursor.fetchall()
            )
    return snapshot


def _delete_tenant_everywhere(tenant) -> None:
    from django.apps import apps
    from django.db import connection

    tables = [m._meta.db_table for m in tenant_export.tenant_models_in_fk_order()]
    # Rows derived from the others (usage counts) are not exported, but go with the tenant.
    derived = [m._meta.db_table for m in apps.get_models() if getattr(m, "derived_rows", False)]
    with tenant_db.tenant_context(tenant.pk), connection.cursor() as cursor:
        for table in [*reversed(tables), *derived]:
            cursor.execute(f'DELETE FROM "{table}"')
    Tenant.objects.filter(pk=tenant.pk).delete()


def _all_tenant_ids_in(table: str) -> set[str]:
    from django.db import connection

    with tenant_db.all_tenants_context(), connection.cursor() as cursor:
        cursor.execute(f'SELECT DISTINCT tenant_id::text FROM "{table}"')
        return {row[0] for row in cursor.fetchall()}


def test_tenant_export_restores_one_tenants_rows_into_an_empty_database(
    backup_objects, tenant, other_tenant
):
    _populate(tenant, "acme", 3)
    _populate(other_tenant, "globex", 2)
    before = _snapshot(tenant.pk)
    assert len(before["documents"]) == 3 and len(before["users"]) == 1

    run = tenant_export.tenant_export(tenant=tenant)
    assert run.details["counts"]["documents"] == 3
    with tenant_db.tenant_context(tenant.pk):
        recorded = EventOutbox.objects.for_tenant(tenant).get(event_type="backup.run_succeeded")
    assert recorded.data["kind"] == "tenant-export" and recorded.data["backup_id"] == run.pk
    _delete_tenant_everywhere(tenant)
    _delete_tenant_everywhere(other_tenant)
    assert _snapshot(tenant.pk)["documents"] == []

    restored = tenant_export.tenant_restore(run=run)

    assert restored["documents"] == 3 and restored["document_versions"] == 3
    assert _snapshot(tenant.pk) == before
    # Usage counts are not exported: the triggers counted the rows again as they went in.
    assert kept(tenant) == summed(tenant) and kept(tenant)[0]
    assert Tenant.objects.get(pk=tenant.pk).subdomain == "acme"
    assert not Tenant.objects.filter(pk=other_tenant.pk).exists()
    for table in before:
        assert _all_tenant_ids_in(table) <= {str(tenant.pk)}
    # Restored ids do not come back from the sequences.
    with tenant_db.tenant_context(tenant.pk):
        document = Document.objects.for_tenant(tenant).first()
        fresh = DocumentVersion.objects.create(
            tenant=tenant,
            document=document,
            number=2,
            original_filename="x.pdf",
            content_type="application/pdf",
            size_bytes=1,
            sha256="0" * 64,
            storage_key="k",
        )
        assert fresh.pk > max(v.pk for v in DocumentVersion.objects.exclude(pk=fresh.pk))


def test_tenant_restore_back_into_place_replaces_that_tenant_only(
    backup_objects, tenant, other_tenant
):
    _populate(tenant, "acme", 2)
    _populate(other_tenant, "globex", 2)
    before = _snapshot(tenant.pk)
    run = tenant_export.tenant_export(tenant=tenant)
    # Both tenants change after the export.
    with tenant_db.tenant_context(tenant.pk):
        DocumentVersion.objects.for_tenant(tenant).delete()
        Document.objects.for_tenant(tenant).filter(original_filename="acme-0.pdf").delete()
        TenantUser.objects.for_tenant(tenant).update(name="Renamed")
    _populate(other_tenant, "globex-later", 1)
    other_after = _snapshot(other_tenant.pk)

    with pytest.raises(tenant_export.TenantRestoreRefused, match="already has rows"):
        tenant_export.tenant_restore(run=run)
    tenant_export.tenant_restore(run=run, replace=True)

    assert _snapshot(tenant.pk) == before
    assert _snapshot(other_tenant.pk) == other_after
