"""Move documents Standard → STANDARD_IA → GLACIER by age, one tenant at a time.

A document's age is the time since its current version was stored (the later of the document's
`created_at` and its newest `DocumentVersion.created_at`), not since its last access: KYC files
are read around onboarding and then rarely, and an age rule gives the same answer as the
bucket's lifecycle rule, so the two never disagree about where an object belongs.

The move is an in-place `copy_object` onto the same key with the new `StorageClass` and
`MetadataDirective='REPLACE'`, re-sending the object's encryption, content type and metadata so
all three survive. The copy makes a new object version; the row records it.

Crash safety: each document is its own unit (a savepoint inside a batch transaction), and the
object is checked with `head_object` before copying. A run that copied an object and died before
its database update leaves the row behind the object; the next run sees the object already in
the target class and only records it (no second copy).
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import DatabaseError, transaction
from django.db.models import Case, Count, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from documents.audit import document_access_record
from documents.models import (
    AccessAction,
    Document,
    DocumentQuerySet,
    DocumentVersion,
    StorageClass,
)
from metis.objectstore import errors, prefixes, store
from tenants import db
from tenants.models import TenantUser

logger = logging.getLogger(__name__)

# Tiering only moves forward along this order; staff may move either way (document_tier_change).
RANK = {StorageClass.STANDARD: 0, StorageClass.STANDARD_IA: 1, StorageClass.GLACIER: 2}

_WARMER_THAN_GLACIER = [StorageClass.STANDARD, StorageClass.STANDARD_IA]

MOVED, RECORDED, ALREADY, REFUSED, FAILED = "moved", "recorded", "already", "refused", "failed"


class TierChangeError(Exception):
    """A tier change the storage server or the document's state does not allow."""


# --- Which documents are due -------------------------------------------------------------------


def _stored_at():
    newest_version = (
        DocumentVersion.objects.filter(document=OuterRef("pk"))
        .order_by("-created_at")
        .values("created_at")[:1]
    )
    return Greatest("created_at", Coalesce(Subquery(newest_version), "created_at"))


def documents_due(tenant_id: uuid.UUID, now: datetime) -> DocumentQuerySet:
    """The tenant's live documents whose age puts them in a colder class than they are in.

    Each row carries `target`, the class it is due for.
    """
    ia_before = now - timedelta(days=settings.DOCUMENT_TIER_IA_AFTER_DAYS)
    glacier_before = now - timedelta(days=settings.DOCUMENT_TIER_GLACIER_AFTER_DAYS)
    return (
        Document.objects.for_tenant(tenant_id)
        .live()
        # The age counts from a version no older than the document: rows created since the IA
        # cut-off cannot be due, and this bound lets the index skip them.
        .filter(created_at__lte=ia_before)
        .alias(stored_at=_stored_at())
        .annotate(
            target=Case(
                When(stored_at__lte=glacier_before, then=Value(StorageClass.GLACIER)),
                When(stored_at__lte=ia_before, then=Value(StorageClass.STANDARD_IA)),
                default=Value(StorageClass.STANDARD),
            )
        )
        .filter(
            Q(target=StorageClass.GLACIER, storage_class__in=_WARMER_THAN_GLACIER)
            | Q(target=StorageClass.STANDARD_IA, storage_class=StorageClass.STANDARD)
        )
    )


def tier_plan(*, tenant_id: uuid.UUID | str, now: datetime | None = None) -> dict[str, int]:
    """Return `{target class: number of documents due}` for one tenant (reads only)."""
    tenant_uuid = db.require_tenant_context(tenant_id)
    rows = (
        documents_due(tenant_uuid, now or timezone.now())
        .order_by()
        .values("target")
        .annotate(due=Count("pk"))
    )
    return {row["target"]: row["due"] for row in rows}


# --- Moving one object -------------------------------------------------------------------------


def _record_class(
    *,
    document: Document,
    storage_class: str,
    version_id: str,
    now: datetime,
    by_user: TenantUser | None = None,
    by_staff: AbstractBaseUser | None = None,
) -> None:
    """Write the document's new class (and object version) and add it to the access log."""
    changes = {"storage_class": storage_class, "storage_class_changed_at": now, "updated_at": now}
    if storage_class != document.storage_class:
        # A restore concerned the old object version; the new class starts with none.
        changes.update(restore_status="", restore_requested_at=None, restore_expires_at=None)
    if version_id:
        changes["version_id"] = version_id
        DocumentVersion.objects.for_tenant(document.tenant_id).filter(
            document_id=document.pk, storage_key=document.storage_key
        ).update(version_id=version_id)
    Document.objects.for_tenant(document.tenant_id).filter(pk=document.pk).update(**changes)
    document_access_record(
        document=document,
        action=AccessAction.TIER_CHANGE,
        user=by_user,
        staff=by_staff,
        from_class=document.storage_class,
        to_class=storage_class,
    )


def _move(
    document: Document,
    storage_class: str,
    *,
    documents: store.ObjectStore,
    now: datetime,
    backwards: bool = False,
    by_user: TenantUser | None = None,
    by_staff: AbstractBaseUser | None = None,
) -> str:
    if not prefixes.key_belongs_to_tenant(document.storage_key, document.tenant_id):
        logger.error(
            "refusing to tier document %s: key %r is outside tenant %s's prefix",
            document.pk,
            document.storage_key,
            document.tenant_id,
        )
        return REFUSED
    version_id, now_in, copied = documents.set_class(
        key=document.storage_key, storage_class=storage_class, backwards=backwards
    )
    with transaction.atomic():  # a savepoint: one document's failure spoils no other
        _record_class(
            document=document,
            storage_class=now_in,
            version_id=version_id,
            now=now,
            by_user=by_user,
            by_staff=by_staff,
        )
    return MOVED if copied else RECORDED


# --- The tiering run ---------------------------------------------------------------------------


@dataclass
class TieringReport:
    tenant_id: uuid.UUID
    outcomes: Counter = field(default_factory=Counter)  # outcome → documents
    moved_to: Counter = field(default_factory=Counter)  # class → documents moved or recorded
    last_id: uuid.UUID | None = None
    more: bool = False  # stopped at `limit` with documents still due

    @property
    def processed(self) -> int:
        return sum(self.outcomes.values())

    def __str__(self) -> str:
        counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(self.outcomes.items()))
        return f"tenant {self.tenant_id}: {counts or 'nothing due'}"


def documents_tier_due(
    *,
    tenant_id: uuid.UUID | str,
    now: datetime | None = None,
    batch_size: int | None = None,
    limit: int | None = None,
    after: uuid.UUID | str | None = None,
    on_progress: Callable[[Document, str], None] | None = None,
) -> TieringReport:
    """Move one tenant's due documents to their class; return what happened to each.

    Idempotent and resumable. Works in batches of `batch_size`, each batch one transaction in
    the tenant's context (a savepoint when the caller already holds one), rows locked with SKIP
    LOCKED so two runs never move the same document. Stops after `limit` documents, setting
    `more` when others are still due; `after` resumes past a document id. A document whose copy
    or update fails is counted as failed and left for the next run.
    """
    tenant_uuid = db.require_tenant_context(tenant_id)
    now = now or timezone.now()
    batch_size = batch_size or settings.DOCUMENT_TIER_BATCH_SIZE
    documents = store.documents_store()
    report = TieringReport(tenant_id=tenant_uuid)
    cursor = uuid.UUID(str(after)) if after else None
    while True:
        size = batch_size if limit is None else min(batch_size, limit - report.processed)
        with transaction.atomic():
            due = documents_due(tenant_uuid, now).order_by("pk")
            if cursor is not None:
                due = due.filter(pk__gt=cursor)
            if size <= 0:
                report.more = due.exists()
                return report
            batch = list(due.select_for_update(skip_locked=True)[:size])
            if not batch:
                return report
            for document in batch:
                try:
                    outcome = _move(document, document.target, documents=documents, now=now)
                except (ClientError, BotoCoreError, DatabaseError) as error:
                    logger.warning("tiering document %s failed: %s", document.pk, error)
                    outcome = FAILED
                report.outcomes[outcome] += 1
                if outcome in (MOVED, RECORDED):
                    report.moved_to[document.target] += 1
                report.last_id = cursor = document.pk
                if on_progress is not None:
                    on_progress(document, outcome)


def document_tier_change(
    *,
    document: Document,
    storage_class: str,
    by_user: TenantUser | None = None,
    by_staff: AbstractBaseUser | None = None,
) -> str:
    """Move one document to `storage_class`, either way (the admin's "change tier").

    Runs in the caller's tenant context, which must be the document's tenant. Return ALREADY,
    MOVED or RECORDED; raise TierChangeError when the key or the server refuses.
    """
    if StorageClass(storage_class) not in RANK:
        raise TierChangeError(f"unknown storage class {storage_class!r}")
    db.require_tenant_context(document)
    with transaction.atomic():
        locked = (
            Document.objects.for_tenant(document.tenant_id).select_for_update().get(pk=document.pk)
        )
        if locked.storage_class == storage_class:
            return ALREADY
        try:
            outcome = _move(
                locked,
                storage_class,
                documents=store.documents_store(),
                now=timezone.now(),
                backwards=True,
                by_user=by_user,
                by_staff=by_staff,
            )
        except ClientError as error:
            if errors.error_code(error) == "InvalidObjectState":
                raise TierChangeError(
                    "the object is in Glacier and not restored: request a restore first"
                ) from error
            raise TierChangeError(f"the storage server refused: {error}") from error
        if outcome == REFUSED:
            raise TierChangeError("the document's key is outside its tenant's prefix")
        return outcome
