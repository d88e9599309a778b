"""Presigned multipart upload: the browser sends the bytes straight to S3, part by part.

1. `multipart_upload_start`: the server checks what the client declares (type, size, SHA-256,
   content type), picks the key itself under the tenant's prefix, opens the S3 multipart upload
   (with the bucket's encryption) and returns a signed ticket plus presigned part URLs.
2. The client PUTs each part to its URL (`multipart_upload_part_urls` refreshes them) and keeps
   each part's ETag.
3. `multipart_upload_complete`: the server checks the parts' total size, completes the upload,
   then reads the object back (into a temporary file) to verify size, SHA-256, the sniffed
   content type and the content itself (a PDF parses, an image decodes), and only then creates
   the Document (through services.record_stored_object). A refusal deletes the object.

The ticket (django.core.signing) binds tenant, key and upload id, so a client can neither pick
a key nor swap one; the services also check the key's tenant prefix on every call.
"""

from __future__ import annotations

import contextlib
import math
import re
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from django.contrib.auth.models import AbstractBaseUser
from django.core import signing

from documents import keys, services
from documents.models import Document
from documents.validation import (
    EXTENSIONS,
    DocumentRejected,
    FileFacts,
    check_allowed,
    check_content,
    check_document_type,
    check_filename,
    check_size,
    check_subject_ref,
    clean_filename,
    inspect_chunks,
)
from metis.objectstore import prefixes, store
from metis.objectstore.errors import STORE_ERRORS, StorageUnavailable
from tenants import db
from tenants.models import Tenant, TenantUser

_SALT = "documents.multipart"
TICKET_MAX_AGE = 24 * 60 * 60
MIN_PART_SIZE = 8 * 1024 * 1024  # S3 needs >= 5 MiB for every part but the last
MAX_PARTS = 10_000
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class UploadRefused(PermissionError):
    """The upload named is not this tenant's (or not a valid upload at all)."""


@dataclass
class MultipartUpload:
    tenant_id: str
    key: str
    upload_id: str
    document_id: str
    document_type: str
    filename: str
    size_bytes: int
    sha256: str
    content_type: str
    replacing: bool
    part_size: int
    subject_ref: str = ""
    part_urls: dict[int, str] = field(default_factory=dict)

    @property
    def part_count(self) -> int:
        return max(1, math.ceil(self.size_bytes / self.part_size))

    @property
    def ticket(self) -> str:
        data = {name: getattr(self, name) for name in _TICKET_FIELDS}
        return signing.dumps(data, salt=_SALT, compress=True)


_TICKET_FIELDS = (
    "tenant_id",
    "key",
    "upload_id",
    "document_id",
    "document_type",
    "filename",
    "size_bytes",
    "sha256",
    "content_type",
    "replacing",
    "part_size",
    "subject_ref",
)


def multipart_ticket_open(*, ticket: str, tenant: Tenant) -> MultipartUpload:
    """Return the upload a ticket describes if it is this tenant's; else raise UploadRefused."""
    try:
        data = signing.loads(ticket, salt=_SALT, max_age=TICKET_MAX_AGE)
    except signing.BadSignature as exc:
        raise UploadRefused("This upload ticket is not valid or has expired.") from exc
    upload = MultipartUpload(**data)
    _check_owned(tenant=tenant, key=upload.key, tenant_id=upload.tenant_id)
    return upload


def _check_owned(*, tenant: Tenant, key: str, tenant_id: str | None = None) -> None:
    if tenant_id is not None and str(tenant.pk) != tenant_id:
        raise UploadRefused("This upload belongs to another organisation.")
    if not prefixes.key_belongs_to_tenant(key, tenant.pk):
        raise UploadRefused("This key is outside your organisation's storage.")


def _part_size(size_bytes: int) -> int:
    return max(MIN_PART_SIZE, math.ceil(size_bytes / MAX_PARTS))


def _presign_parts(upload: MultipartUpload, part_numbers: list[int]) -> dict[int, str]:
    documents = store.documents_store()
    urls = {}
    for number in part_numbers:
        if not 1 <= number <= upload.part_count:
            raise DocumentRejected(
                f"Part {number} is outside 1..{upload.part_count}.", code="bad_part"
            )
        urls[number] = documents.multipart_part_url(
            key=upload.key, upload_id=upload.upload_id, part_number=number
        )
    return urls


@db.tenant_context_required(tenant="tenant")
def multipart_upload_start(
    *,
    tenant: Tenant,
    document_type: str,
    filename: str,
    size_bytes: int,
    sha256: str,
    content_type: str,
    replacing: Document | None = None,
    subject_ref: str = "",
) -> MultipartUpload:
    """Open a multipart upload at a server-chosen key; return its ticket and part URLs.

    `subject_ref` (the borrower a new document is about) travels in the signed ticket.
    """
    if replacing is not None:
        if replacing.tenant_id != tenant.pk:
            raise UploadRefused("This document belongs to another organisation.")
        if replacing.is_deleted():
            raise DocumentRejected("This document was deleted.", code="deleted")
        document_type = replacing.document_type
    check_document_type(document_type)
    check_size(size_bytes)
    check_filename(filename)
    subject_ref = check_subject_ref(subject_ref) if replacing is None else ""
    sha256 = (sha256 or "").lower()
    if not _SHA256.match(sha256):
        raise DocumentRejected("Give the file's SHA-256 as 64 hex digits.", code="bad_checksum")
    if content_type not in EXTENSIONS:
        raise DocumentRejected(
            f"The content type “{content_type[:100]}” is not accepted; declare one of "
            f"{', '.join(EXTENSIONS)}.",
            code="unknown_content",
        )
    # The rule the bytes will face at completion, said now rather than after the upload.
    check_allowed(content_type=content_type, document_type=document_type)
    services.refuse_duplicate(tenant=tenant, sha256=sha256, replacing=replacing)
    document_id = replacing.pk if replacing is not None else uuid.uuid4()
    key = keys.document_key(
        tenant_id=tenant.pk,
        document_type=document_type,
        document_id=document_id,
        extension=EXTENSIONS[content_type],
    )
    try:
        upload_id = store.documents_store().multipart_start(key=key, content_type=content_type)
    except STORE_ERRORS as exc:
        raise StorageUnavailable(f"Could not start the upload: {exc}") from exc
    upload = MultipartUpload(
        tenant_id=str(tenant.pk),
        key=key,
        upload_id=upload_id,
        document_id=str(document_id),
        document_type=document_type,
        filename=clean_filename(filename),
        size_bytes=size_bytes,
        sha256=sha256,
        content_type=content_type,
        replacing=replacing is not None,
        part_size=_part_size(size_bytes),
        subject_ref=subject_ref,
    )
    upload.part_urls = _presign_parts(upload, list(range(1, upload.part_count + 1)))
    return upload


def multipart_upload_part_urls(
    *, tenant: Tenant, upload: MultipartUpload, part_numbers: list[int]
) -> dict[int, str]:
    """Fresh presigned URLs for some parts of this tenant's upload."""
    _check_owned(tenant=tenant, key=upload.key, tenant_id=upload.tenant_id)
    return _presign_parts(upload, part_numbers)


def multipart_upload_abort(*, tenant: Tenant, upload: MultipartUpload) -> None:
    """Abandon the upload: S3 drops the parts already sent."""
    _check_owned(tenant=tenant, key=upload.key, tenant_id=upload.tenant_id)
    try:
        store.documents_store().multipart_abort(key=upload.key, upload_id=upload.upload_id)
    except STORE_ERRORS as exc:
        raise StorageUnavailable(f"Could not abort the upload: {exc}") from exc


def _abort_quietly(upload: MultipartUpload) -> None:
    # If this fails too, reconcile_storage aborts stale uploads.
    with contextlib.suppress(*STORE_ERRORS):
        store.documents_store().multipart_abort(key=upload.key, upload_id=upload.upload_id)


@db.tenant_context_required(tenant="tenant")
def multipart_upload_complete(
    *,
    tenant: Tenant,
    upload: MultipartUpload,
    parts: list[dict],
    user: TenantUser | None = None,
    staff: AbstractBaseUser | None = None,
    ip_address: str | None = None,
) -> Document:
    """Complete the upload, verify the stored bytes server-side, then create the Document.

    `parts` is `[{"PartNumber": n, "ETag": "..."}]` as the client received them from S3.
    """
    _check_owned(tenant=tenant, key=upload.key, tenant_id=upload.tenant_id)
    documents = store.documents_store()
    try:
        listed = documents.multipart_parts(key=upload.key, upload_id=upload.upload_id)
    except STORE_ERRORS as exc:
        raise UploadRefused("No such upload in progress (finished, aborted or expired).") from exc
    sent = sum(part["Size"] for part in listed)
    if sent != upload.size_bytes:
        raise DocumentRejected(
            f"The parts hold {sent} bytes but {upload.size_bytes} were declared; "
            "send the missing parts or start again.",
            code="size_mismatch",
        )
    try:
        documents.multipart_complete(
            key=upload.key,
            upload_id=upload.upload_id,
            parts=[
                {"PartNumber": int(part["PartNumber"]), "ETag": str(part["ETag"])}
                for part in sorted(parts, key=lambda part: int(part["PartNumber"]))
            ],
        )
    except STORE_ERRORS as exc:
        _abort_quietly(upload)
        documents.purge_quietly(upload.key)
        raise DocumentRejected(
            f"S3 refused to complete the upload: {exc}", code="incomplete"
        ) from exc
    try:
        facts = _verify(upload)
        head = documents.head(upload.key) or {}
    except BaseException:
        documents.purge_quietly(upload.key)
        raise
    version_id = head.get("VersionId") or ""
    replacing = None
    if upload.replacing:
        replacing = Document.objects.for_tenant(tenant).get(pk=upload.document_id)
    return services.record_stored_object(
        tenant=tenant,
        document_id=uuid.UUID(upload.document_id),
        document_type=upload.document_type,
        filename=upload.filename,
        facts=facts,
        key=upload.key,
        version_id="" if version_id == "null" else version_id,
        etag=head.get("ETag") or "",
        replacing=replacing,
        user=user,
        staff=staff,
        ip_address=ip_address,
        subject_ref=upload.subject_ref,
    )


# The object is read back to disk, never held in memory past this size.
_SPOOL_IN_MEMORY = 2_621_440


def _verify(upload: MultipartUpload) -> FileFacts:
    """Read the stored object back and check it is what was declared, byte for byte, and that
    its content is well formed (the same checks as a page upload, on the same kind of file)."""
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as copy:
        facts = inspect_chunks(
            _tee(store.documents_store().chunks(upload.key), copy),
            document_type=upload.document_type,
        )
        if facts.size_bytes != upload.size_bytes:
            raise DocumentRejected(
                f"The stored file has {facts.size_bytes} bytes, not the {upload.size_bytes} "
                "declared.",
                code="size_mismatch",
            )
        if facts.sha256 != upload.sha256:
            raise DocumentRejected(
                "The stored file's SHA-256 does not match the one declared: it was corrupted or "
                "changed in transit. Nothing was kept; upload it again.",
                code="checksum_mismatch",
            )
        if facts.content_type != upload.content_type:
            raise DocumentRejected(
                f"The file was declared as {upload.content_type} but its content is "
                f"{facts.content_type}.",
                code="content_mismatch",
            )
        check_content(copy, content_type=facts.content_type)
    return facts


def _tee(chunks: Iterator[bytes], copy: BinaryIO) -> Iterator[bytes]:
    for chunk in chunks:
        copy.write(chunk)
        yield chunk
