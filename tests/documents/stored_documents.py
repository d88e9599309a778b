"""Helpers for tiering and restore tests: documents put straight into S3 with boto3, plus rows.

Plain functions rather than conftest fixtures, so they can live beside the upload tests' own
fixtures without either file editing the other.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta

from django.utils import timezone

from documents import keys
from documents.models import Document, DocumentVersion, StorageClass
from tenants import db

PDF = b"%PDF-1.4\n% a KYC document for tiering tests\n%%EOF\n"


def enable_versioning(client, bucket: str) -> None:
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def put_document(
    client,
    bucket: str,
    tenant,
    *,
    days_old: int = 0,
    storage_class: str = StorageClass.STANDARD,
    document_type: str = "pan",
    key: str | None = None,
    deleted: bool = False,
    body: bytes | None = None,
) -> Document:
    """Store an encrypted PDF with metadata under the tenant's prefix and create its rows.

    With `key`, store nothing: the rows point at that existing object (a forged row, say).
    """
    document_id = uuid.uuid4()
    body = body or PDF + document_id.bytes
    sha256 = hashlib.sha256(body).hexdigest()
    if key:
        put = client.head_object(Bucket=bucket, Key=key)
    else:
        key = keys.document_key(
            tenant_id=tenant.pk,
            document_type=document_type,
            document_id=document_id,
            extension="pdf",
        )
        put = client.put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            ContentType="application/pdf",
            ContentDisposition='attachment; filename="pan.pdf"',
            ServerSideEncryption="AES256",
            StorageClass=storage_class,
            Metadata={"sha256": sha256, "document-id": str(document_id)},
        )
    with db.tenant_context(tenant.pk):
        document = Document.objects.create(
            id=document_id,
            tenant=tenant,
            document_type=document_type,
            original_filename="pan.pdf",
            content_type="application/pdf",
            size_bytes=len(body),
            sha256=sha256,
            storage_key=key,
            version_id=put.get("VersionId", ""),
            etag=put["ETag"],  # as the upload paths record it
            storage_class=storage_class,
            deleted_at=timezone.now() if deleted else None,
        )
        DocumentVersion.objects.create(
            tenant=tenant,
            document=document,
            number=1,
            original_filename="pan.pdf",
            content_type="application/pdf",
            size_bytes=len(body),
            sha256=sha256,
            storage_key=key,
            version_id=put.get("VersionId", ""),
        )
    if days_old:
        age(document, days=days_old)
    return document


def age(document: Document, *, days: int) -> None:
    """Make the document (and its versions) `days` old, inside its tenant's context."""
    stored_at = timezone.now() - timedelta(days=days)
    with db.tenant_context(document.tenant_id):
        Document.objects.for_tenant(document.tenant_id).filter(pk=document.pk).update(
            created_at=stored_at, stored_at=stored_at
        )
        DocumentVersion.objects.for_tenant(document.tenant_id).filter(document=document).update(
            created_at=stored_at
        )


def set_restore(document: Document, **fields) -> None:
    """Put the document's restore fields in a given state (as a server's answer would)."""
    with db.tenant_context(document.tenant_id):
        Document.objects.for_tenant(document.tenant_id).filter(pk=document.pk).update(**fields)


def reload(document: Document) -> Document:
    with db.tenant_context(document.tenant_id):
        return Document.objects.for_tenant(document.tenant_id).get(pk=document.pk)


def versions_of(client, bucket: str, key: str) -> list[dict]:
    listing = client.list_object_versions(Bucket=bucket, Prefix=key)
    return [version for version in listing.get("Versions", []) if version["Key"] == key]


def storage_class_of(client, bucket: str, key: str) -> str:
    return client.head_object(Bucket=bucket, Key=key).get("StorageClass", "STANDARD")
