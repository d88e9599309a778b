"""Move documents Standard → STANDARD_IA → GLACIER by age, one tenant at a time.

A document's age is the time since its current version was stored (the later of the document's
`created_at` and its newest `DocumentVersion.created_at`), not since its last access: KYC files
are read around onboarding and then rarely, and an age rule gives the same answer as the
bucket's lifecycle rule, so the two never disagree about where an object belongs.

The move is an in-place `copy_object` onto the same key with the new `StorageClass` and
`MetadataDirective='REPLACE'`, re-sending the object's encryption, content type and metadata so
all three survive. The copy makes a new object version; the row records it.

Crash safety: a run first claims its batch (`tiering_target`, `tiering_started_at`) and commits
the claim, then copies each object with no transaction open and records each document in a
transaction of its own, which clears the claim. A run killed between a copy and its update (a
worker killed, a time limit, a lost database) leaves its claims behind: every few minutes the
sweep (`documents_tiering_sweep`, Celery beat) takes claims older than any live run can be,
reads each object's real class with `head_object` and records it, or finishes the copy. So rows
name their object's class again within minutes, not at the next daily run. The object is always
checked before copying: a copy that already happened is only recorded, never made twice.
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
    claim_expired = timezone.now() - timedelta(minutes=settings.DOCUMENT_TIERING_STALE_MINUTES)
    glacier_before = now - timedelta(days=settings.DOCUMENT_TIER_GLACIER_AFTER_DAYS)
    return (
        Document.objects.for_tenant(tenant_id)
        .live()
        # The age counts from a version no older than the document: rows created since the IA
        # cut-off cannot be due, and this bound lets the index skip them.
        .filter(created_at__lte=ia_before)
        # Claimed by a run still at work: not due again (a dead run's claim is the sweep's).
        .filter(Q(tiering_started_at__isnull=True) | Q(tiering_started_at__lt=claim_expired))
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
    changes = {
        "storage_class": storage_class,
        "storage_class_changed_at": now,
        "updated_at": now,
        "tiering_target": "",
        "tiering_started_at": None,
    }
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
            _claims_record(tenant_uuid, [(document, document.target) for document in batch])
        db.connection_release()  # no connection held while S3 copies (outside a transaction)
        for document in batch:
            outcome = _move_claimed(document, document.target, documents=documents, now=now)
            report.outcomes[outcome] += 1
            if outcome in (MOVED, RECORDED):
                report.moved_to[document.target] += 1
            report.last_id = cursor = document.pk
            if on_progress is not None:
                on_progress(document, outcome)


def _claims_record(tenant_id: uuid.UUID, claims: list[tuple[Document, str]]) -> None:
    """Mark each document as being moved to its target class, as of now (one update a class)."""
    claimed_at = timezone.now()
    by_target: dict[str, list[uuid.UUID]] = {}
    for document, target in claims:
        by_target.setdefault(target, []).append(document.pk)
    for target, ids in by_target.items():
        Document.objects.for_tenant(tenant_id).filter(pk__in=ids).update(
            tiering_target=target, tiering_started_at=claimed_at
        )


def _claims_release(document: Document) -> None:
    try:
        with transaction.atomic():
            Document.objects.for_tenant(document.tenant_id).filter(pk=document.pk).update(
                tiering_target="", tiering_started_at=None
            )
    except DatabaseError:
        pass  # the claim stays: the sweep finishes this document in a few minutes


def _move_claimed(
    document: Document, target: str, *, documents: store.ObjectStore, now: datetime
) -> str:
    """Move one claimed document; on a refusal or an outage, count it failed.

    A failure releases the claim, so the next run tries again; if the database is gone and the
    claim cannot be released, it stays for the sweep, which reads what the copy did.
    """
    try:
        outcome = _move(document, target, documents=documents, now=now)
    except (ClientError, BotoCoreError, DatabaseError) as error:
        logger.warning("tiering document %s failed: %s", document.pk, error)
        outcome = FAILED
    if outcome in (FAILED, REFUSED):
        _claims_release(document)
    return outcome


# --- The sweep: tiering runs that died between a copy and its update ----------------------------


@dataclass
class SweepReport:
    tenant_id: uuid.UUID
    outcomes: Counter = field(default_factory=Counter)
    more: bool = False  # stopped at `limit` with stale claims left

    def __str__(self) -> str:
        counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(self.outcomes.items()))
        return f"tenant {self.tenant_id}: {counts or 'no interrupted tiering'}"


def documents_tiering_sweep(
    *,
    tenant_id: uuid.UUID | str,
    stale_after: timedelta | None = None,
    limit: int | None = None,
) -> SweepReport:
    """Make the rows of interrupted tiering name the class their object is in; return counts.

    Takes the tenant's claims older than `stale_after` (DOCUMENT_TIERING_STALE_MINUTES: longer
    than a tiering task may live, so the run that made them is dead), claims them afresh, and
    for each reads the object's class: in the target class (the copy happened), the row is
    recorded; still in the old one, the copy is made now. Idempotent; up to `limit` documents,
    setting `more` when stale claims remain.
    """
    tenant_uuid = db.require_tenant_context(tenant_id)
    if stale_after is None:
        stale_after = timedelta(minutes=settings.DOCUMENT_TIERING_STALE_MINUTES)
    limit = limit or settings.DOCUMENT_TIER_BATCH_SIZE
    report = SweepReport(tenant_id=tenant_uuid)
    with transaction.atomic():
        stale = (
            Document.objects.for_tenant(tenant_uuid)
            .filter(tiering_started_at__lt=timezone.now() - stale_after)
            .order_by("pk")
            .select_for_update(skip_locked=True)
        )
        claimed = list(stale[: limit + 1])
        report.more = len(claimed) > limit
        claimed = claimed[:limit]
        # A sweep that dies too leaves them for the next one.
        _claims_record(tenant_uuid, [(document, document.tiering_target) for document in claimed])
    db.connection_release()
    documents = store.documents_store()
    for document in claimed:
        outcome = _move_claimed(
            document, document.tiering_target, documents=documents, now=timezone.now()
        )
        report.outcomes[outcome] += 1
    if claimed:
        logger.info("finished interrupted tiering: %s", report)
    return report


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
