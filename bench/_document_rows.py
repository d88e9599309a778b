"""Document and version rows for objects a bench stored itself (bulk-created, not uploaded).

Shared by bench/erasure.py and bench/tiering_throughput.py. Import after django.setup(). Not a
benchmark itself (the leading underscore keeps `make bench`'s glob off it).
"""

from __future__ import annotations

import uuid
from typing import Any

from documents.models import Document, DocumentVersion

PDF = "application/pdf"
NO_SHA256 = "0" * 64  # the benches never read the bytes back


def document_row(
    tenant,
    document_id: uuid.UUID,
    *,
    key: str,
    version_id: str,
    size: int,
    kind: str,
    name: str,
    **fields: Any,
) -> Document:
    return Document(
        id=document_id,
        tenant=tenant,
        document_type=kind,
        original_filename=name,
        content_type=PDF,
        size_bytes=size,
        sha256=NO_SHA256,
        storage_key=key,
        version_id=version_id,
        **fields,
    )


def version_row(
    tenant, document_id: uuid.UUID, number: int, *, key: str, version_id: str, size: int, name: str
) -> DocumentVersion:
    return DocumentVersion(
        tenant=tenant,
        document_id=document_id,
        number=number,
        original_filename=name,
        content_type=PDF,
        size_bytes=size,
        sha256=NO_SHA256,
        storage_key=key,
        version_id=version_id,
    )
