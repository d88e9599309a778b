"""Where documents live in the bucket: the object key layout.

Keys follow the spec: `tenants/{tenant-id}/documents/{pan|aadhar|bank-statements}/…`,
`tenants/{tenant-id}/images/…`, `tenants/{tenant-id}/reports/…`. A user's filename never becomes
part of a key: keys are built from ids and the extension of the sniffed content type.
"""

from __future__ import annotations

import uuid

from documents.models import DocumentType
from metis.objectstore import prefixes

_FOLDERS = {
    DocumentType.PAN: "documents/pan",
    DocumentType.AADHAR: "documents/aadhar",
    DocumentType.BANK_STATEMENT: "documents/bank-statements",
    DocumentType.IMAGE: "images",
    DocumentType.REPORT: "reports",
}


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
        f"{prefixes.tenant_prefix(tenant_id)}{folder}/{uuid.UUID(str(document_id))}/"
        f"{uuid.uuid4().hex}.{extension.lstrip('.')}"
    )
