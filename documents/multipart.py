"""Presigned multipart upload: the browser sends the bytes straight to S3, part by part.

1. `multipart_upload_start`: the server checks what the client declares (type, size, SHA-256,
   content type), picks the key itself under the tenant's prefix, opens the S3 multipart upload
   (with the bucket's encryption) and returns a signed ticket plus presigned part URLs.
2. The client PUTs each part to its URL (`multipart_upload_part_urls` refreshes them) and keeps
   each part's ETag.
3. `multipart_upload_complete`: the server checks the parts' sizes, completes the upload,
   verifies what was stored, and only then creates the Document (through
   services.record_stored_object). A refusal deletes the object; nothing else was written.

Two ways, chosen at the start:

- `checksummed` (the upload page): no file digest is needed to start, so the client hashes each
  part just before sending it (and the whole file alongside) instead of reading the file twice.
  It asks for each part's URL with that part's SHA-256 (`multipart_upload_part_urls`), which is
  signed into the URL: S3 itself refuses a part whose bytes do not match, and the client can
  neither drop nor change the header. At completion the client declares the file's SHA-256 (the
  duplicate check runs then) and the part digests; the server builds the part list from S3's
  own listing (every part present, each the size the layout says), completes, and checks the
  type and content where the object lies, by ranged reads (magic bytes; a PDF parses, an image
  decodes). The bytes never pass through the app. The whole file's SHA-256 recorded is the one
  the client declared over the same bytes whose part digests S3 checked.
- Otherwise the SHA-256 is declared at the start, the part URLs come with the ticket, and the
  completed object is read back whole (into a temporary file) to verify size, SHA-256, the
  sniffed content type and the content itself.

The ticket (django.core.signing) binds tenant, key and upload id, so a client can neither pick
a key nor swap one; the services also check the key's tenant prefix on every call.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import math
import re
import uuid
from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser
from django.core import signing

from documents import keys, multipart_verify, services
from documents.models import Document
from documents.validation import (
    EXTENSIONS,
    DocumentRejected,
    check_allowed,
    check_document_type,
    check_filename,
    check_size,
    check_subject_ref,
    clean_filename,
)
from metis.objectstore import prefixes, store
from metis.objectstore.errors import STORE_ERRORS, StorageUnavailable
from tenants import db
from tenants.models import Tenant, TenantUser

_SALT = "documents.multipart"
TICKET_MAX_AGE = 24 * 60 * 60
MIN_PART_SIZE = 8 * 1024 * 1024  # S3 needs >= 5 MiB for every part but the last
MAX_PART_SIZE = 64 * 1024 * 1024  # what a client may choose; more only slows a retried part
MAX_PARTS = 10_000
# Parts the upload page sends at once: under a browser's six connections per host, and what
# bench/upload_throughput.py's browser-style client uses too.
PARALLEL_PARTS = 4
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
    # Every part URL of this upload carries the part's SHA-256 (S3 checks the bytes on arrival).
    checksummed: bool = False
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
    "checksummed",
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


def _part_size(size_bytes: int, declared: int | None = None) -> int:
    smallest = max(MIN_PART_SIZE, math.ceil(size_bytes / MAX_PARTS))
    if declared is None:
        return smallest
    if not smallest <= declared <= MAX_PART_SIZE:
        raise DocumentRejected(
            f"A part size of {declared:,} bytes is not accepted for this file; give one from "
            f"{smallest:,} to {MAX_PART_SIZE:,}.",
            code="bad_part_size",
        )
    return declared


def _checked_checksums(checksums: list[str], *, count: int) -> list[str]:
    """The part checksums if there is one per part named, each a base64 SHA-256."""
    if len(checksums) != count:
        raise DocumentRejected(
            f"Give one SHA-256 per part: {count} parts, {len(checksums)} checksums.",
            code="bad_part_checksums",
        )
    for number, checksum in enumerate(checksums, start=1):
        try:
            raw = base64.b64decode(checksum, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32 or base64.b64encode(raw).decode() != checksum:
            raise DocumentRejected(
                f"Checksum {number} is not a base64 SHA-256 (44 characters).",
                code="bad_part_checksums",
            )
    return checksums


def _checked_sha256(sha256: str) -> str:
    sha256 = (sha256 or "").lower()
    if not _SHA256.match(sha256):
        raise DocumentRejected("Give the file's SHA-256 as 64 hex digits.", code="bad_checksum")
    return sha256


def _presign_parts(
    upload: MultipartUpload, part_numbers: list[int], checksums: list[str] | None = None
) -> dict[int, str]:
    """URLs for `part_numbers`; a checksummed upload's each signed with its part's digest."""
    if upload.checksummed:
        checksums = _checked_checksums(checksums or [], count=len(part_numbers))
    documents = store.documents_store()
    urls = {}
    for at, number in enumerate(part_numbers):
        if not 1 <= number <= upload.part_count:
            raise DocumentRejected(
                f"Part {number} is outside 1..{upload.part_count}.", code="bad_part"
            )
        urls[number] = documents.multipart_part_url(
            key=upload.key,
            upload_id=upload.upload_id,
            part_number=number,
            checksum_sha256=checksums[at] if upload.checksummed and checksums else "",
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
    part_size: int | None = None,
    checksummed: bool = False,
) -> MultipartUpload:
    """Open a multipart upload at a server-chosen key; return its ticket and part URLs.

    `subject_ref` (the borrower a new document is about) travels in the signed ticket.
    `checksummed`: the part URLs are asked for part by part with each part's SHA-256, the
    file's SHA-256 may wait until the completion, and no part URL comes with the ticket.
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
    sha256 = "" if checksummed and not sha256 else _checked_sha256(sha256)
    if content_type not in EXTENSIONS:
        raise DocumentRejected(
            f"The content type “{content_type[:100]}” is not accepted; declare one of "
            f"{', '.join(EXTENSIONS)}.",
            code="unknown_content",
        )
    # The rule the bytes will face at completion, said now rather than after the upload.
    check_allowed(content_type=content_type, document_type=document_type)
    part_size = _part_size(size_bytes, part_size)
    if sha256:
        services.refuse_duplicate(tenant=tenant, sha256=sha256, replacing=replacing)
    document_id = replacing.pk if replacing is not None else uuid.uuid4()
    key = keys.document_key(
        tenant_id=tenant.pk,
        document_type=document_type,
        document_id=document_id,
        extension=EXTENSIONS[content_type],
    )
    try:
        upload_id = store.documents_store().multipart_start(
            key=key, content_type=content_type, checksums=checksummed
        )
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
        part_size=part_size,
        subject_ref=subject_ref,
        checksummed=checksummed,
    )
    if not checksummed:
        upload.part_urls = _presign_parts(upload, list(range(1, upload.part_count + 1)))
    return upload


def multipart_upload_part_urls(
    *,
    tenant: Tenant,
    upload: MultipartUpload,
    part_numbers: list[int],
    part_checksums: list[str] | None = None,
) -> dict[int, str]:
    """Presigned URLs for some parts of this tenant's upload (with `part_checksums`, one per
    part number, when the upload is checksummed)."""
    _check_owned(tenant=tenant, key=upload.key, tenant_id=upload.tenant_id)
    return _presign_parts(upload, part_numbers, part_checksums)


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


def _parts_to_complete(
    upload: MultipartUpload, listed: list[dict], named: list[dict], checksums: list[str]
) -> list:
    """The part list to complete with. With declared checksums it is S3's own listing, each
    part the size the layout says, with its checksum: the client's list does not choose which
    parts make the object. Without, the parts the client named, as before."""
    if not upload.checksummed:
        return [
            {"PartNumber": int(part["PartNumber"]), "ETag": str(part["ETag"])}
            for part in sorted(named, key=lambda part: int(part["PartNumber"]))
        ]
    by_number = {int(part["PartNumber"]): part for part in listed}
    missing = sorted(set(range(1, upload.part_count + 1)) - set(by_number))
    if missing or len(by_number) != upload.part_count:
        raise DocumentRejected(
            f"Parts {', '.join(map(str, missing[:10]))} have not arrived; send them or start "
            "again.",
            code="size_mismatch",
        )
    complete = []
    for number in range(1, upload.part_count + 1):
        expected = min(upload.part_size, upload.size_bytes - (number - 1) * upload.part_size)
        if by_number[number]["Size"] != expected:
            raise DocumentRejected(
                f"Part {number} holds {by_number[number]['Size']} bytes, not {expected}.",
                code="size_mismatch",
            )
        complete.append(
            {
                "PartNumber": number,
                "ETag": by_number[number]["ETag"],
                "ChecksumSHA256": checksums[number - 1],
            }
        )
    return complete


@db.tenant_context_required(tenant="tenant")
def multipart_upload_complete(
    *,
    tenant: Tenant,
    upload: MultipartUpload,
    parts: list[dict],
    part_checksums: list[str] | None = None,
    sha256: str = "",
    user: TenantUser | None = None,
    staff: AbstractBaseUser | None = None,
    ip_address: str | None = None,
) -> Document:
    """Complete the upload, verify the stored bytes server-side, then create the Document.

    `parts` is `[{"PartNumber": n, "ETag": "..."}]` as the client received them from S3. A
    checksummed upload gives every part's SHA-256 (`part_checksums`, which S3 wants again to
    complete) and the file's `sha256` unless it was declared at the start.
    """
    _check_owned(tenant=tenant, key=upload.key, tenant_id=upload.tenant_id)
    checksums: list[str] = []
    if upload.checksummed:
        checksums = _checked_checksums(part_checksums or [], count=upload.part_count)
        declared = _checked_sha256(sha256 or upload.sha256)
        if upload.sha256 and declared != upload.sha256:
            raise DocumentRejected(
                "The SHA-256 differs from the one this upload started with.", code="bad_checksum"
            )
        upload.sha256 = declared
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
    complete = _parts_to_complete(upload, listed, parts, checksums)
    try:
        completed = documents.multipart_complete(
            key=upload.key, upload_id=upload.upload_id, parts=complete
        )
    except STORE_ERRORS as exc:
        _abort_quietly(upload)
        documents.purge_quietly(upload.key)
        raise DocumentRejected(
            f"S3 refused to complete the upload: {exc}", code="incomplete"
        ) from exc
    version_id = completed.get("VersionId") or ""
    version_id = "" if version_id == "null" else version_id
    try:
        if upload.checksummed:
            facts = multipart_verify.verify_in_place(upload, version_id=version_id)
        else:
            facts = multipart_verify.verify_read_back(upload)
            version_id = version_id or ((documents.head(upload.key) or {}).get("VersionId") or "")
    except BaseException:
        documents.purge_quietly(upload.key)
        raise
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
        etag=completed.get("ETag") or "",
        replacing=replacing,
        user=user,
        staff=staff,
        ip_address=ip_address,
        subject_ref=upload.subject_ref,
    )
