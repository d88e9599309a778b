"""Row-level security on the three document tables: another tenant's rows are invisible and
cannot be written, through the ORM and through raw SQL as the app role."""

import pytest
from django.db import DatabaseError, connection, transaction

from documents.models import AccessAction, Document, DocumentAccess, DocumentVersion
from tenants import db
from tests.documents.conftest import upload

TABLES = ["documents", "document_versions", "document_access_log"]


@pytest.fixture
def both(s3_bucket, tenant, other_tenant):
    return upload(tenant, name="acme.pdf"), upload(other_tenant, name="globex.pdf")


def test_orm_sees_only_the_current_tenants_document_rows(both, tenant):
    mine, theirs = both
    with db.tenant_context(tenant.pk):
        assert list(Document.objects.all()) == [mine]
        assert {v.document_id for v in DocumentVersion.objects.all()} == {mine.pk}
        assert {a.document_id for a in DocumentAccess.objects.all()} == {mine.pk}
        assert not Document.objects.filter(pk=theirs.pk).exists()


@pytest.mark.parametrize("table", TABLES)
def test_raw_sql_as_the_app_role_sees_only_the_current_tenant(both, tenant, table):
    with db.tenant_context(tenant.pk), connection.cursor() as cursor:
        cursor.execute(f"SELECT DISTINCT tenant_id FROM {table}")
        assert cursor.fetchall() == [(tenant.pk,)]
    with connection.cursor() as cursor:  # no tenant context: nothing at all
        cursor.execute(f"SELECT count(*) FROM {table}")
        assert cursor.fetchone() == (0,)


def test_rows_for_another_tenant_cannot_be_written_from_a_tenant_context(
    both, tenant, other_tenant
):
    _, theirs = both
    with db.tenant_context(tenant.pk):
        with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
            DocumentAccess.objects.create(
                tenant=other_tenant, document_id=theirs.pk, action=AccessAction.DOWNLOAD
            )
        with connection.cursor() as cursor:
            cursor.execute("UPDATE documents SET deleted_at = now() WHERE id = %s", [theirs.pk])
            assert cursor.rowcount == 0
    with db.tenant_context(other_tenant.pk):
        assert Document.objects.get().deleted_at is None
