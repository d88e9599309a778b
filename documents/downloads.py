"""Short-lived download links: presigned S3 URLs, or signed tokens for local files.

In local-file mode nothing can presign, so a Django view serves the file instead, guarded by a
token (django.core.signing) that names the tenant, the key and the filename and expires after
PRESIGNED_URL_EXPIRES seconds, like a presigned URL. The view needs no session: the token is the
permission, issued only after the tenant and permission checks.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.urls import reverse

from documents import objects, storage
from documents.models import Document

_SALT = "documents.local-download"


@dataclass(frozen=True)
class LocalDownload:
    tenant_id: str
    key: str
    filename: str
    content_type: str


def local_download_token(document: Document) -> str:
    return signing.dumps(
        {
            "t": str(document.tenant_id),
            "k": document.storage_key,
            "f": document.original_filename,
            "c": document.content_type,
        },
        salt=_SALT,
        compress=True,
    )


def local_download_open(token: str) -> LocalDownload:
    """Return what the token grants; raise signing.BadSignature (or SignatureExpired)."""
    data = signing.loads(token, salt=_SALT, max_age=settings.PRESIGNED_URL_EXPIRES)
    grant = LocalDownload(
        tenant_id=data["t"], key=data["k"], filename=data["f"], content_type=data["c"]
    )
    if not storage.key_belongs_to_tenant(grant.key, grant.tenant_id):
        raise signing.BadSignature("key outside the tenant's prefix")
    return grant


def download_url(document: Document) -> str:
    if storage.is_s3():
        return objects.presigned_get_url(
            key=document.storage_key,
            version_id=document.version_id,
            filename=document.original_filename,
            content_type=document.content_type,
        )
    return reverse("document-local-file", args=[local_download_token(document)])
