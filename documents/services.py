"""Writes on documents: upload, replace, delete, and the download URL (which logs the access).

Every upload path ends here: the tenant page, the admin form, and the presigned multipart upload
(documents.multipart), so validation, duplicate detection and the object-then-row protocol
(documents.consistency) are the same for all of them.
"""

from __future__ import annotations

import uuid
from typing import BinaryIO

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from documents import consistency, keys, replication
from documents.audit import document_access_record
from documents.models import (
    AccessAction,
    Document,
    DocumentVersion,
    RestoreStatus,
    StorageClass,
)
from documents.validation import (
    DocumentRejected,
    FileFacts,
    check_document_type,
    check_subject_ref,
    clean_filename,
    inspect_file,
)
from metis.objectstore import store
from tenants import db
from tenants.models import Tenant, TenantUser


class DocumentNotDownloadable(RuntimeError):
    """The document exists but its bytes cannot be handed out now (archived, deleted)."""


class DocumentUnavailable(DocumentNotDownloadable):
    """The primary store is down and the DR bucket has no copy of this version yet."""


PRIMARY_DOWN_NO_COPY = (
    "Primary storage is unavailable and this version has not reached the disaster-recovery "
    "copy yet. Try again later."
)


# --- Reads shared by the write paths -----------------------------------------------------------


def _lock_content(tenant_id: uuid.UUID, sha256: str) -> None:
    """Serialize uploads of the same content in one tenant, so the duplicate check holds."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            [f"documents:{tenant_id}:{sha256}"],
        )


def refuse_duplicate(*, tenant: Tenant, sha256: str, replacing: Document | None = None) -> None:
    """Reject content the tenant already holds in a live document, saying where it is."""
    if replacing is not None and replacing.sha256 == sha256:
        raise DocumentRejected(
            "This file is identical to the current version; nothing to replace.",
            code="duplicate",
        )
    existing = (
        Document.objects.for_tenant(tenant).live().filter(sha256=sha256).order_by("created_at")
    )
    if replacing is not None:
        existing = existing.exclude(pk=replacing.pk)
    found = existing.first()
    if found is not None:
        when = f"{found.created_at:%Y-%m-%d %H:%M} UTC"
        raise DocumentRejected(
            f"This file is already stored as “{found.original_filename}” "
            f"({found.get_document_type_display()}, uploaded {when}).",
            code="duplicate",
            params={"document_id": str(found.pk)},
        )


# --- The one recording path ---------------------------------------------------------------------


def _actor_fields(user: TenantUser | None, staff: AbstractBaseUser | None) -> dict:
    return {"uploaded_by": user, "uploaded_by_staff": staff}


@db.tenant_context_required(tenant="tenant")
def record_stored_object(
    *,
    tenant: Tenant,
    document_id: uuid.UUID,
    document_type: str,
    filename: str,
    facts: FileFacts,
    key: str,
    version_id: str,
    replacing: Document | None,
    user: TenantUser | None,
    staff: AbstractBaseUser | None,
    ip_address: str | None,
    subject_ref: str = "",
    etag: str = "",
) -> Document:
    """Write the rows for an object already stored at `key`; delete the object if they fail.

    Used by every upload path once the bytes are stored and verified. `subject_ref` (already
    checked) names the borrower a new document is about; a replacement keeps the document's.
    `etag` is the stored object's (tiering copies it only while it still has that tag).
    """
    try:
        with transaction.atomic():
            _lock_content(tenant.pk, facts.sha256)
            if replacing is not None:
                replacing = (
                    Document.objects.for_tenant(tenant).select_for_update().get(pk=replacing.pk)
                )
                if replacing.is_deleted():
                    raise DocumentRejected("This document was deleted.", code="deleted")
            refuse_duplicate(tenant=tenant, sha256=facts.sha256, replacing=replacing)
            fields = {
                "original_filename": filename,
                "content_type": facts.content_type,
                "size_bytes": facts.size_bytes,
                "sha256": facts.sha256,
                "storage_key": key,
                "version_id": version_id,
            }
            now = timezone.now()
            if replacing is None:
                document = Document.objects.create(
                    id=document_id,
                    tenant=tenant,
                    document_type=document_type,
                    metadata={"subject_ref": subject_ref} if subject_ref else {},
                    etag=etag,
                    **fields,
                    **_actor_fields(user, staff),
                )
                number, action = 1, AccessAction.UPLOAD
            else:
                document = replacing
                latest = DocumentVersion.objects.for_tenant(tenant).filter(document=document)
                number = latest.aggregate(number=Max("number"))["number"] + 1
                for name, value in {
                    **fields,
                    **_actor_fields(user, staff),
                    "etag": etag,
                    "storage_class": StorageClass.STANDARD,
                    "storage_class_changed_at": now,
                    "restore_status": RestoreStatus.NONE,
                    "restore_requested_at": None,
                    "restore_expires_at": None,
                }.items():
                    setattr(document, name, value)
                document.save()
                action = AccessAction.REPLACE
            version = DocumentVersion.objects.create(
                tenant=tenant,
                document=document,
                number=number,
                **fields,
                **_actor_fields(user, staff),
            )
            replication.versions_replicate_later(tenant_id=tenant.pk, version_ids=[version.pk])
            document_access_record(
                document=document,
                action=action,
                user=user,
                staff=staff,
                ip_address=ip_address,
                size_bytes=document.size_bytes,
                version=number,
            )
            consistency.purge_unless_committed(key)
    except BaseException:
        store.documents_store().purge_quietly(key)
        raise
    finally:
        consistency.purge_uncommitted()
    return document


def _store_and_record(
    *,
    tenant: Tenant,
    document_id: uuid.UUID,
    document_type: str,
    file: BinaryIO,
    filename: str,
    replacing: Document | None,
    user: TenantUser | None,
    staff: AbstractBaseUser | None,
    ip_address: str | None,
    subject_ref: str = "",
) -> Document:
    facts = inspect_file(file, document_type=document_type)
    # Before storing anything: the common mistake gets its clear answer without an S3 trip.
    refuse_duplicate(tenant=tenant, sha256=facts.sha256, replacing=replacing)
    key = keys.document_key(
        tenant_id=tenant.pk,
        document_type=document_type,
        document_id=document_id,
        extension=facts.extension,
    )
    stored = store.documents_store().put_fileobj_stored(
        key=key, file=file, content_type=facts.content_type
    )
    return record_stored_object(
        tenant=tenant,
        document_id=document_id,
        document_type=document_type,
        filename=clean_filename(filename),
        facts=facts,
        key=key,
        version_id=stored.version_id,
        etag=stored.etag,
        replacing=replacing,
        user=user,
        staff=staff,
        ip_address=ip_address,
        subject_ref=subject_ref,
    )


# --- Services ------------------------------------------------------------------------------------


@db.tenant_context_required(tenant="tenant")
def document_upload(
    *,
    tenant: Tenant,
    document_type: str,
    file: BinaryIO,
    filename: str,
    user: TenantUser | None = None,
    staff: AbstractBaseUser | None = None,
    ip_address: str | None = None,
    subject_ref: str = "",
) -> Document:
    """Validate `file`, store it encrypted under the tenant's prefix and create its Document.

    `file` is read from disk in chunks (a TemporaryUploadedFile for large uploads), never whole.
    `subject_ref` names the borrower the document is about (kept in `metadata`).
    Raise DocumentRejected (with a clear message) or StorageUnavailable; either way,
    nothing is left behind.
    """
    check_document_type(document_type)
    subject_ref = check_subject_ref(subject_ref)
    return _store_and_record(
        tenant=tenant,
        document_id=uuid.uuid4(),
        document_type=document_type,
        file=file,
        filename=filename,
        replacing=None,
        user=user,
        staff=staff,
        ip_address=ip_address,
        subject_ref=subject_ref,
    )


@db.tenant_context_required(tenant="document")
def document_replace(
    *,
    document: Document,
    file: BinaryIO,
    filename: str,
    user: TenantUser | None = None,
    staff: AbstractBaseUser | None = None,
    ip_address: str | None = None,
) -> Document:
    """Store `file` as the new current version of `document`; earlier versions stay stored."""
    if document.is_deleted():
        raise DocumentRejected("This document was deleted.", code="deleted")
    return _store_and_record(
        tenant=document.tenant,
        document_id=document.pk,
        document_type=document.document_type,
        file=file,
        filename=filename,
        replacing=document,
        user=user,
        staff=staff,
        ip_address=ip_address,
    )


@db.tenant_context_required(tenant="document")
def document_delete(
    *,
    document: Document,
    user: TenantUser | None = None,
    staff: AbstractBaseUser | None = None,
    ip_address: str | None = None,
) -> Document:
    """Soft-delete: hide the document; its objects and versions stay for retention."""
    with transaction.atomic():
        document = (
            Document.objects.for_tenant(document.tenant_id).select_for_update().get(pk=document.pk)
        )
        if document.is_deleted():
            return document
        document.deleted_at = timezone.now()
        document.save(update_fields=["deleted_at", "updated_at"])
        document_access_record(
            document=document,
            action=AccessAction.DELETE,
            user=user,
            staff=staff,
            ip_address=ip_address,
        )
    return document


def download_refusal(document: Document) -> str | None:
    """Return why `document`'s bytes cannot be handed out now, or None if they can."""
    if document.is_deleted():
        return "This document was deleted."
    if document.storage_class == StorageClass.GLACIER:
        ready = document.restore_status == RestoreStatus.READY and (
            document.restore_expires_at is None or document.restore_expires_at > timezone.now()
        )
        if not ready:
            if document.restore_status == RestoreStatus.REQUESTED:
                return (
                    "This document is archived in Glacier; a restore was requested and is not "
                    "ready yet. Try again later."
                )
            return (
                "This document is archived in Glacier and cannot be downloaded until it is "
                "restored. Request a restore first."
            )
    return None


def document_is_downloadable(document: Document) -> bool:
    """Whether a download URL may be issued now (the Glacier/restore rule lives here)."""
    return download_refusal(document) is None


@db.tenant_context_required(tenant="document")
def document_download_url(
    *,
    document: Document,
    user: TenantUser | None = None,
    staff: AbstractBaseUser | None = None,
    ip_address: str | None = None,
) -> str:
    """Return a short-lived URL for the current version and record the access.

    The caller has checked the tenant and the permission; this checks the document itself.
    The URL is presigned (PRESIGNED_URL_EXPIRES seconds) and pinned to the current version.
    While the primary store does not answer, the URL is the DR bucket's copy of that version
    (DocumentUnavailable when it has none yet).
    """
    refusal = download_refusal(document)
    if refusal:
        raise DocumentNotDownloadable(refusal)
    fallback = None
    if replication.primary_down():
        version = (
            DocumentVersion.objects.for_tenant(document.tenant_id)
            .filter(document=document, storage_key=document.storage_key)
            .first()
        )
        fallback = version and replication.dr_download_url(
            version=version,
            filename=document.original_filename,
            content_type=document.content_type,
        )
        if not fallback:
            raise DocumentUnavailable(PRIMARY_DOWN_NO_COPY)
    with transaction.atomic():
        document_access_record(
            document=document,
            action=AccessAction.DOWNLOAD,
            user=user,
            staff=staff,
            ip_address=ip_address,
        )
        Document.objects.for_tenant(document.tenant_id).filter(pk=document.pk).update(
            last_accessed_at=timezone.now()
        )
    if fallback:
        return fallback
    return store.documents_store().presigned_get_url(
        key=document.storage_key,
        version_id=document.version_id,
        filename=document.original_filename,
        content_type=document.content_type,
    )
