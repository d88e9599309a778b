"""Analytics fixtures: the real ClickHouse engine (chdb) in a private directory per test worker,
a fresh ClickHouse database per test, migrated by the real migration command; and two tenants
with users and documents for the DuckDB exports."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from django.utils import timezone

from analytics import clickhouse, schema, services
from documents.models import Document, StorageClass
from tenants import db
from tests.factories import TenantFactory, TenantUserFactory


@pytest.fixture(scope="session")
def chdb_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("chdb") / "data"


@pytest.fixture
def clickhouse_db(settings, chdb_dir):
    """A migrated ClickHouse database of its own for this test; dropped afterwards."""
    settings.CLICKHOUSE_URL = ""
    settings.CLICKHOUSE_CHDB_PATH = chdb_dir
    settings.CLICKHOUSE_CLUSTER = ""
    settings.CLICKHOUSE_LOCK_TIMEOUT = 30
    settings.CLICKHOUSE_DATABASE = f"test_{uuid.uuid4().hex[:12]}"
    schema.migrate()
    yield settings.CLICKHOUSE_DATABASE
    settings.CLICKHOUSE_URL = ""
    with clickhouse.session(use_database=False) as client:
        client.command(f"DROP DATABASE IF EXISTS `{settings.CLICKHOUSE_DATABASE}`")


def clickhouse_rows(sql: str, **parameters) -> list[tuple]:
    with clickhouse.session() as client:
        return client.query(sql, parameters=parameters).result_rows


def events_in_clickhouse(tenant_id=None) -> int:
    """Count the rows in `events` (plain count(): no FINAL, no uniq, so duplicates would show)."""
    if tenant_id is None:
        return clickhouse_rows("SELECT count() FROM events")[0][0]
    return clickhouse_rows(
        "SELECT count() FROM events WHERE tenant_id = {t:UUID}", t=str(tenant_id)
    )[0][0]


def insert_events(rows: list[tuple]) -> None:
    """Write (tenant_id, event_type, data_json, user_id, timestamp) rows straight to ClickHouse."""
    with clickhouse.session() as client:
        client.insert(
            "events",
            [[uuid.uuid4(), *row] for row in rows],
            column_names=services.EVENT_COLUMNS,
        )


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def acme(committed_db):
    return TenantFactory(name="Acme Lending", subdomain="acme")


@pytest.fixture
def globex(committed_db):
    return TenantFactory(name="Globex Finance", subdomain="globex")


def make_document(tenant, *, document_type: str, size_bytes: int, tier: str = "STANDARD", **extra):
    document_id = uuid.uuid4()
    with db.tenant_context(tenant.pk):
        return Document.objects.create(
            id=document_id,
            tenant=tenant,
            document_type=document_type,
            original_filename=f"{document_type}-{document_id.hex[:6]}.pdf",
            content_type="application/pdf",
            size_bytes=size_bytes,
            sha256="0" * 64,
            storage_key=f"tenants/{tenant.pk}/documents/pan/{document_id}/{uuid.uuid4().hex}.pdf",
            storage_class=tier,
            **extra,
        )


@dataclass
class Dataset:
    tenant: object
    other_tenant: object
    users: dict = field(default_factory=dict)  # tenant pk -> [user ids]
    documents: dict = field(default_factory=dict)  # tenant pk -> [document ids]


@pytest.fixture
def dataset(tenant, other_tenant, tenant_user, other_tenant_user) -> Dataset:
    """Acme: 2 users, 3 PAN (1 in Glacier) + 1 deleted; Globex: 1 user, 2 Aadhaar."""
    bob = TenantUserFactory(tenant=tenant, email="bob@acme.example", name="Bob Acme")
    data = Dataset(tenant, other_tenant)
    data.users[tenant.pk] = {tenant_user.pk, bob.pk}
    data.users[other_tenant.pk] = {other_tenant_user.pk}
    acme = [
        make_document(tenant, document_type="pan", size_bytes=100),
        make_document(tenant, document_type="pan", size_bytes=200),
        make_document(tenant, document_type="pan", size_bytes=300, tier=StorageClass.GLACIER),
    ]
    deleted = make_document(
        tenant, document_type="image", size_bytes=5000, deleted_at=timezone.now()
    )
    globex = [
        make_document(other_tenant, document_type="aadhar", size_bytes=7000),
        make_document(other_tenant, document_type="aadhar", size_bytes=9000),
    ]
    data.documents[tenant.pk] = {d.pk for d in [*acme, deleted]}
    data.documents[other_tenant.pk] = {d.pk for d in globex}
    return data
