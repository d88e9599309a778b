"""Restore Glacier documents: request a temporary readable copy, then notice when it is ready.

On AWS, `restore_object` starts a retrieval (hours for the Standard tier); `head_object` then
carries `Restore: ongoing-request="true"`, and once done `ongoing-request="false",
expiry-date="..."`. Until then a GET answers InvalidObjectState.

A server without Glacier semantics (SeaweedFS answers 405 MethodNotAllowed to restore_object)
stores the object as readable as any other. There the refusal is not an error: the document is
marked ready only after a one-byte ranged GET proves the object readable, with no expiry, and
the user is told why. If that GET fails too, the restore is marked failed with the server's
answer. Any other refusal (access denied, a server error) changes nothing and is reported.
"""

from __future__ import annotations

import email.utils
import logging
import re
from dataclasses import dataclass
from datetime import datetime

from botocore.exceptions import ClientError
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from documents import events, restore_mail
from documents.audit import document_access_record, document_event_record
from documents.models import AccessAction, Document, RestoreStatus, StorageClass
from metis.objectstore import errors, prefixes, store
from tenants import db
from tenants.models import TenantUser

logger = logging.getLogger(__name__)


class RestoreError(Exception):
    """A restore that cannot be requested; the message is meant for the user."""


@dataclass(frozen=True)
class RestoreResult:
    status: str  # a RestoreStatus value
    message: str


_ONGOING = re.compile(r'ongoing-request\s*=\s*"(true|false)"', re.IGNORECASE)
_EXPIRY = re.compile(r'expiry-date\s*=\s*"([^"]+)"', re.IGNORECASE)


def parse_restore_header(value: str | None) -> tuple[bool, datetime | None] | None:
    """Return (ongoing, expiry) from S3's `x-amz-restore` header, or None without one."""
    if not value:
        return None
    ongoing = _ONGOING.search(value)
    if ongoing is None:
        return None
    expiry = _EXPIRY.search(value)
    expires_at = email.utils.parsedate_to_datetime(expiry.group(1)) if expiry else None
    return ongoing.group(1).lower() == "true", expires_at


def _require_own_context(document: Document) -> None:
    db.require_tenant_context(document)


def _save_restore(document: Document, **changes) -> None:
    Document.objects.for_tenant(document.tenant_id).filter(pk=document.pk).update(
        updated_at=timezone.now(), **changes
    )


def document_restore_request(
    *,
    document: Document,
    requested_by: TenantUser | None = None,
    requested_by_staff: AbstractBaseUser | None = None,
) -> RestoreResult:
    """Ask the storage server to restore a Glacier document; record and return the outcome.

    Runs in the caller's tenant context, which must be the document's tenant. Idempotent: a
    restore already requested or ready is not asked for again. Raise RestoreError with a
    message for the user when the document needs no restore or the server refuses.
    """
    _require_own_context(document)
    now = timezone.now()
    with transaction.atomic():
        locked = (
            Document.objects.for_tenant(document.tenant_id)
            .live()
            .select_for_update()
            .filter(pk=document.pk)
            .first()
        )
        if locked is None:
            raise RestoreError("This document does not exist or has been deleted.")
        if locked.storage_class != StorageClass.GLACIER:
            raise RestoreError("This document is not archived in Glacier: it can be downloaded.")
        if locked.restore_status == RestoreStatus.REQUESTED:
            return RestoreResult(RestoreStatus.REQUESTED, "A restore is already in progress.")
        if locked.restore_status == RestoreStatus.READY and (
            locked.restore_expires_at is None or locked.restore_expires_at > now
        ):
            return RestoreResult(RestoreStatus.READY, "This document is already restored.")
        if not prefixes.key_belongs_to_tenant(locked.storage_key, locked.tenant_id):
            raise RestoreError("This document's storage key is not valid; staff were alerted.")
        result = _ask_server(locked)
        _save_restore(
            locked,
            restore_status=result.status,
            restore_requested_at=now,
            restore_expires_at=None,
            restore_requested_by=requested_by,
            restore_notified_at=None,
        )
        document_access_record(
            document=locked,
            action=AccessAction.RESTORE_REQUEST,
            user=requested_by,
            staff=requested_by_staff,
        )
        if result.status == RestoreStatus.READY:
            document_event_record(document=locked, event_type=events.RESTORED)
    return result


def _ask_server(document: Document) -> RestoreResult:
    days = settings.DOCUMENT_RESTORE_DAYS
    documents = store.documents_store()
    try:
        documents.restore_request(
            document.storage_key, days=days, tier=settings.DOCUMENT_RESTORE_TIER
        )
        return RestoreResult(
            RestoreStatus.REQUESTED,
            f"Restore requested ({settings.DOCUMENT_RESTORE_TIER} retrieval, usually hours); "
            f"the document will then be downloadable for {days} days.",
        )
    except ClientError as error:
        code = errors.error_code(error)
        if code == "RestoreAlreadyInProgress":
            return RestoreResult(RestoreStatus.REQUESTED, "A restore is already in progress.")
        if not (errors.is_unsupported(error) or code == "InvalidObjectState"):
            logger.warning("restore of document %s refused: %s", document.pk, error)
            raise RestoreError(
                f"The storage server refused the restore ({code or 'error'}); try again later."
            ) from error
        refusal = code
    # The server has no Glacier restore (or the object is not really archived): readable as is?
    try:
        readable = documents.readable(document.storage_key)
    except ClientError as error:
        raise RestoreError(
            f"The storage server refused the restore ({refusal}) and the document could not "
            f"be read ({errors.error_code(error) or 'error'})."
        ) from error
    if readable:
        return RestoreResult(
            RestoreStatus.READY,
            f"This storage server does not restore from Glacier ({refusal}); the document is "
            "readable as it is.",
        )
    return RestoreResult(
        RestoreStatus.FAILED,
        f"The storage server refused the restore ({refusal}) and the document is not readable.",
    )


def document_restore_check(*, document: Document) -> str:
    """Bring a document's restore state up to date with the server; return the new state.

    Runs in the caller's tenant context, which must be the document's tenant. Idempotent.
    `requested` becomes `ready` (with the copy's expiry) once the server says so, or once a
    GET proves a server without restore semantics serves the object; `ready` whose copy has
    expired goes back to not restored. Becoming ready sends the requester's mail (on commit).
    """
    _require_own_context(document)
    status, now = document.restore_status, timezone.now()
    if status not in (RestoreStatus.REQUESTED, RestoreStatus.READY):
        return status
    documents = store.documents_store()
    head = documents.head(document.storage_key) or {}
    parsed = parse_restore_header(head.get("Restore"))
    if parsed is not None:
        ongoing, expires_at = parsed
        new_status = RestoreStatus.REQUESTED if ongoing else RestoreStatus.READY
    elif status == RestoreStatus.REQUESTED:
        readable = documents.readable(document.storage_key)
        new_status = RestoreStatus.READY if readable else RestoreStatus.REQUESTED
        expires_at = None
    else:
        new_status, expires_at = status, document.restore_expires_at
    if new_status == RestoreStatus.READY and expires_at is not None and expires_at <= now:
        new_status, expires_at = RestoreStatus.NONE, None  # the restored copy has gone
    if (new_status, expires_at) != (status, document.restore_expires_at):
        with transaction.atomic():
            _save_restore(document, restore_status=new_status, restore_expires_at=expires_at)
            if new_status == RestoreStatus.READY and status != RestoreStatus.READY:
                document_event_record(document=document, event_type=events.RESTORED)
                restore_mail.restore_ready_mail_enqueue(document=document)
    return new_status


def documents_restore_check_pending(*, tenant_id) -> dict[str, int]:
    """Check the tenant's documents with a restore requested, or ready until a date; count states.

    Runs in (and requires) the tenant's context. A document the server cannot answer for is
    logged and left as it was for the next check.
    """
    db.require_tenant_context(tenant_id)
    # A ready copy without an expiry (a server without Glacier semantics) can never change.
    pending = Document.objects.for_tenant(tenant_id).filter(
        Q(restore_status=RestoreStatus.REQUESTED)
        | Q(restore_status=RestoreStatus.READY, restore_expires_at__isnull=False)
    )
    states: dict[str, int] = {}
    for document in pending.order_by("pk"):
        try:
            state = document_restore_check(document=document)
        except ClientError as error:
            logger.warning("restore check of document %s failed: %s", document.pk, error)
            state = "error"
        states[state] = states.get(state, 0) + 1
    return states
