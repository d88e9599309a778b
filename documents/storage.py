"""Where documents live: the object key layout and the configured storage backend.

Keys follow the spec: `tenants/{tenant-id}/documents/{pan|aadhar|bank-statements}/…`,
`tenants/{tenant-id}/images/…`, `tenants/{tenant-id}/reports/…`. A user's filename never becomes
part of a key: keys are built from ids and the extension of the sniffed content type.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.files.storage import Storage, storages

from documents.models import DocumentType

_FOLDERS = {
    DocumentType.PAN: "documents/pan",
    DocumentType.AADHAR: "documents/aadhar",
    DocumentType.BANK_STATEMENT: "documents/bank-statements",
    DocumentType.IMAGE: "images",
    DocumentType.REPORT: "reports",
}


def tenant_prefix(tenant_id: uuid.UUID | str) -> str:
    """The one prefix a tenant's objects may live under (trailing slash included)."""
    return f"tenants/{uuid.UUID(str(tenant_id))}/"


def document_key(
    *,
    tenant_id: uuid.UUID | str,
    document_type: str,
    document_id: uuid.UUID | str,
    extension: str,
) -> str:
    """A fresh key for one version of one document: every version gets its own object."""
    folder = _FOLDERS[DocumentType(document_type)]
    return (
        f"{tenant_prefix(tenant_id)}{folder}/{uuid.UUID(str(document_id))}/"
        f"{uuid.uuid4().hex}.{extension.lstrip('.')}"
    )


def key_belongs_to_tenant(key: str, tenant_id: uuid.UUID | str) -> bool:
    return key.startswith(tenant_prefix(tenant_id)) and ".." not in key.split("/")


def document_storage() -> Storage:
    return storages["default"]


def is_s3() -> bool:
    return bool(settings.AWS_STORAGE_BUCKET_NAME)


def sse_parameters() -> dict:
    """The server-side encryption arguments the configured storage writes objects with, for
    the boto3 calls made beside django-storages (multipart uploads, exports)."""
    return dict(getattr(document_storage(), "object_parameters", None) or {})


def s3_client():
    """A boto3 client for the configured bucket's server (for what django-storages lacks:
    multipart part URLs, copy with a storage class, restore, versioning, lifecycle)."""
    if not is_s3():
        raise RuntimeError("S3 is not configured (AWS_STORAGE_BUCKET_NAME is empty)")
    return document_storage().connection.meta.client
