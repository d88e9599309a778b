"""Fixtures for the analytics tests: two tenants with users and documents."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest
from django.utils import timezone

from documents.models import Document, StorageClass
from tenants import db
from tests.factories import TenantUserFactory


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
