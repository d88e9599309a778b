"""Fixtures for the privacy tests: the real S3 server, ClickHouse engine (chdb) and Redis."""

from __future__ import annotations

import io
import uuid

import pytest
from django.core.cache import cache

from analytics import exports
from analytics import services as analytics_services
from analytics.dashboards import Scope, clickhouse_charts
from documents import services
from metis.objectstore import store
from privacy import services as privacy_services
from privacy.erasure import run
from tenants import db
from tests.analytics.conftest import chdb_dir, clickhouse_db, clickhouse_rows
from tests.backups.conftest import backup_objects, pg_sandbox, tls_s3
from tests.documents.conftest import pdf_bytes
from tests.factories import TenantUserFactory

__all__ = ["backup_objects", "chdb_dir", "clickhouse_db", "pg_sandbox", "tls_s3"]


def upload_versions(
    tenant, *, subject_ref: str = "", user=None, versions: int = 3, kind="bank-statement"
):
    """Upload one document of `kind` and replace it until it has `versions` stored versions."""
    with db.tenant_context(tenant.pk):
        document = services.document_upload(
            tenant=tenant,
            document_type=kind,
            file=io.BytesIO(pdf_bytes()),
            filename="statement.pdf",
            subject_ref=subject_ref,
            user=user,
        )
        for _ in range(versions - 1):
            document = services.document_replace(
                document=document, file=io.BytesIO(pdf_bytes()), filename="statement.pdf", user=user
            )
    return document


def object_versions(prefix: str) -> list[dict]:
    """Every version and delete marker under `prefix`, read from the S3 server."""
    return list(store.documents_store().version_entries(prefix))


def events_naming(tenant_id, *, document_ids=(), user_ids=()) -> int:
    return clickhouse_rows(
        "SELECT count() FROM events WHERE tenant_id = {t:UUID} AND ("
        "JSONExtractString(event_data, 'document_id') IN {d:Array(String)} "
        "OR user_id IN {u:Array(UUID)})",
        t=str(tenant_id),
        d=[str(d) for d in document_ids] or [""],
        u=[str(u) for u in user_ids] or [str(uuid.UUID(int=0))],
    )[0][0]


def deliver_events() -> None:
    analytics_services.outbox_drain()


def cache_dashboards(tenant) -> None:
    from datetime import date, timedelta

    today = date.today()
    with db.tenant_context(tenant.pk, atomic=False):
        clickhouse_charts(Scope(tenant.pk, today - timedelta(days=1), today))


def dashboard_keys(tenant) -> list[str]:
    with db.tenant_context(tenant.pk, atomic=False):
        return list(cache.keys("analytics:dashboard:*"))


def export_now() -> None:
    exports.export_run()


@pytest.fixture
def versioned_bucket(s3_bucket):
    """The test's bucket with versioning on, as production's is (`storage_setup`)."""
    documents = store.documents_store()
    documents.client.put_bucket_versioning(
        Bucket=s3_bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    return s3_bucket


@pytest.fixture
def approver(staff_user_model, tenant_db):
    return staff_user_model.objects.create_user("approver", "ap@metis.example", "x", is_staff=True)


def erase(tenant, *, kind: str, ref: str, staff, approver, now=None) -> tuple:
    """Ask (staff), approve (another staff member) and run an erasure; return (request, run)."""
    with db.tenant_context(tenant.pk):
        request = privacy_services.erasure_request_create(
            tenant=tenant, kind=kind, ref=ref, staff=staff
        )
        privacy_services.erasure_request_approve(request=request, staff=approver)
    receipt = run.erasure_run(request_id=request.pk, tenant_id=tenant.pk, now=now)
    return request, receipt


def make_user(tenant, email: str, **fields):
    return TenantUserFactory(tenant=tenant, email=email, name=email.split("@")[0], **fields)
