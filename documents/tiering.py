"""Move documents Standard → STANDARD_IA → GLACIER by age, one tenant at a time.

A document's age is the time since its current version was stored (`Document.stored_at`: its
`created_at`, or its newest replacement's time), not since its last access: KYC files are read
around onboarding and then rarely, and an age rule gives the same answer as the bucket's
lifecycle rule, so the two never disagree about where an object belongs.

The move is an in-place `copy_object` onto the same key with the new `StorageClass`. The copy
makes a new object version; the row records it (and the ETag, which a copy keeps).

The fast path (`ObjectStore.move_class`) is one request an object and no HEAD: the row knows
the object's ETag, and the copy is made only if the object still has it (`CopySourceIfMatch`),
with `MetadataDirective='COPY'` so the server keeps content type, headers and metadata, and the
encryption of the settings re-sent. A batch's copies run on a bounded thread pool
(DOCUMENT_TIERING_WORKERS), with no connection held, and the batch's rows are then written
together: one update of the documents, one of their versions, one insert of access-log rows and
one of events. An object that is not what the row knows (rewritten, deleted, archived by a
lifecycle rule) makes the copy fail; the checked path (`ObjectStore.set_class`) then reads it
with a HEAD: the same bytes (a copy an earlier run made, a lifecycle transition) are recorded,
other bytes or none are DRIFTED: left alone and logged, never tiered blindly.

Crash safety: a run first claims its batch (`tiering_target`, `tiering_started_at`) and commits
the claim, then copies and records; the record clears the claim. A run killed between a copy
and its update (a worker killed, a time limit, a lost database) leaves its claims behind: every
few minutes the sweep (`documents_tiering_sweep`, Celery beat) takes claims older than any live
run can be and moves them by the checked path: a copy that already happened is only recorded,
never made twice. A row that was claimed before (a stale claim a run takes over), or whose
copy may have happened but whose row could not be written (its ETag is then cleared), also
goes by the checked path. So does every document when the caller holds a transaction: a claim
is then not durable (a crash would roll it back and keep the copy), so the run works one
document at a time, checking each object before it copies it. One case the fast path does not
see: a copy made outside any claim (a staff tier change whose transaction rolled back after
its copy) keeps the ETag, so it is copied once more: the row ends right, with one extra
noncurrent version.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import DatabaseError, connection, transaction
from django.db.models import Case, Count, Q, Value, When
from django.utils import timezone

from documents import replication
from documents.audit import document_access_record, documents_access_record_many
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
# The object is not the one the row knows (other bytes, or none): left alone and logged.
DRIFTED = "drifted"
NOT_MOVED = (FAILED, REFUSED, DRIFTED)

# A copy refused for one of these reasons met an object other than the row's (or archived):
# the checked path reads it before anything else is done.
_OBJECT_DIFFERS = {"PreconditionFailed", "NoSuchKey", "404", "InvalidObjectState", "InvalidRequest"}


class TierChangeError(Exception):
    """A tier change the storage server or the document's state does not allow."""


# --- Which documents are due -------------------------------------------------------------------


def _outside_its_tenant(document: Document) -> bool:
    """Whether the row's key is outside its tenant's prefix (logged: never tiered)."""
    if prefixes.key_belongs_to_tenant(document.storage_key, document.tenant_id):
        return False
    logger.error(
        "refusing to tier document %s: key %r is outside tenant %s's prefix",
        document.pk,
        document.storage_key,
        document.tenant_id,
    )
    return True


def documents_due(tenant_id: uuid.UUID, now: datetime) -> DocumentQuerySet:
    """The tenant's live documents whose age puts them in a colder class than they are in.

    Each row carries `target`, the class it is due for. The age counts from `stored_at` (the
    current version's time, kept on the row), so the plan is a range of the partial index
    `documents_tier_due`, not a probe for each document's newest version.
    """
    ia_before = now - timedelta(days=settings.DOCUMENT_TIER_IA_AFTER_DAYS)
    claim_expired = timezone.now() - timedelta(minutes=settings.DOCUMENT_TIERING_STALE_MINUTES)
    glacier_before = now - timedelta(days=settings.DOCUMENT_TIER_GLACIER_AFTER_DAYS)
    return (
        Document.objects.for_tenant(tenant_id)
        .live()
        # The index's own condition, spelled as it is, so the planner may use it.
        .filter(storage_class__in=_WARMER_THAN_GLACIER, stored_at__lte=ia_before)
        # Claimed by a run still at work: not due again (a dead run's claim is the sweep's).
        .filter(Q(tiering_started_at__isnull=True) | Q(tiering_started_at__lt=claim_expired))
        .annotate(
            target=Case(
                When(stored_at__lte=glacier_before, then=Value(StorageClass.GLACIER)),
                default=Value(StorageClass.STANDARD_IA),
            )
        )
        .filter(
            Q(target=StorageClass.GLACIER)
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
        .annotate(due=Count("*"))
    )
    return {row["target"]: row["due"] for row in rows}


# --- Moving one object -------------------------------------------------------------------------


def _record_class(
    *,
    document: Document,
    storage_class: str,
    version_id: str,
    now: datetime,
    etag: str = "",
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
    if etag:
        changes["etag"] = etag
    if storage_class != document.storage_class:
        # A restore concerned the old object version; the new class starts with none.
        changes.update(restore_status="", restore_requested_at=None, restore_expires_at=None)
    if version_id:
        changes["version_id"] = version_id
        # A new object version: its copy in the DR bucket is due again.
        DocumentVersion.objects.for_tenant(document.tenant_id).filter(
            document_id=document.pk, storage_key=document.storage_key
        ).update(version_id=version_id, dr_replicated_at=None, dr_pending_since=now)
        replication.document_replicate_later(tenant_id=document.tenant_id, document_id=document.pk)
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
    if _outside_its_tenant(document):
        return REFUSED
    try:
        change = documents.set_class(
            key=document.storage_key,
            storage_class=storage_class,
            backwards=backwards,
            expect_etag=document.etag,
            expect_version=document.version_id,
        )
    except store.ObjectChanged as error:
        _log_drift(document, error)
        return DRIFTED
    with transaction.atomic():  # a savepoint: one document's failure spoils no other
        _record_class(
            document=document,
            storage_class=change.storage_class,
            version_id=change.version_id,
            etag=change.etag,
            now=now,
            by_user=by_user,
            by_staff=by_staff,
        )
    return MOVED if change.copied else RECORDED


def _log_drift(document: Document, error: Exception) -> None:
    logger.error(
        "not tiering document %s: its object changed behind the row's back (%s); "
        "see reconcile_storage",
        document.pk,
        error,
    )


# --- The fast path: copies on a thread pool, rows a batch at a time ------------------------------


@dataclass
class _Copy:
    """One document's move as the pool left it: the outcome and what the bucket now holds."""

    document: Document
    target: str
    outcome: str
    change: store.ClassChange | None = None


def _copy(document: Document, target: str, *, documents: store.ObjectStore) -> _Copy:
    """Make one document's S3 move (in a pool thread: no database here)."""
    if _outside_its_tenant(document):
        return _Copy(document, target, REFUSED)
    # A row claimed before (a run died holding it) may have had its copy made: check first.
    checked = document.tiering_started_at is not None or not document.etag
    try:
        if not checked:
            try:
                change = documents.move_class(
                    key=document.storage_key, storage_class=target, etag=document.etag
                )
                return _Copy(document, target, MOVED, change)
            except ClientError as error:
                if errors.error_code(error) not in _OBJECT_DIFFERS and not errors.is_missing(error):
                    raise
        change = documents.set_class(
            key=document.storage_key,
            storage_class=target,
            expect_etag=document.etag,
            expect_version=document.version_id,
        )
    except store.ObjectChanged as error:
        _log_drift(document, error)
        return _Copy(document, target, DRIFTED)
    except (ClientError, BotoCoreError) as error:
        logger.warning("tiering document %s failed: %s", document.pk, error)
        return _Copy(document, target, FAILED)
    return _Copy(document, target, MOVED if change.copied else RECORDED, change)


def _copies_record(tenant_id: uuid.UUID, copies: list[_Copy], now: datetime) -> None:
    """Write the rows of a batch's moves together; on a database error, one by one.

    A document whose row cannot be written is counted FAILED; its claim is released with its
    ETag cleared, so the next run reads the object before copying (the copy may be made).
    """
    done = [copy for copy in copies if copy.outcome not in NOT_MOVED]
    try:
        with transaction.atomic():
            _classes_record(tenant_id, done, now)
    except DatabaseError as error:
        logger.warning("recording a tiering batch failed (%s): recording one at a time", error)
        for copy in done:
            assert copy.change is not None
            try:
                with transaction.atomic():
                    _record_class(
                        document=copy.document,
                        storage_class=copy.change.storage_class,
                        version_id=copy.change.version_id,
                        etag=copy.change.etag,
                        now=now,
                    )
            except DatabaseError as each_error:
                logger.warning("tiering document %s failed: %s", copy.document.pk, each_error)
                copy.outcome = FAILED
    _claims_release(
        tenant_id,
        [copy.document for copy in copies if copy.outcome in NOT_MOVED],
        forget_etag=[copy.document for copy in copies if copy.outcome == FAILED],
    )


# One statement a batch, whatever its size: the rows' new values come in as arrays. (The ORM's
# bulk_update writes a CASE per field with a branch per row: quadratic, 2.4 s for 200 rows.)
_DOCUMENTS_RECORD = """
    UPDATE documents AS d
       SET storage_class = v.storage_class, version_id = v.version_id, etag = v.etag,
           storage_class_changed_at = %(now)s, updated_at = %(now)s,
           tiering_target = '', tiering_started_at = NULL,
           -- a restore concerned the old object version; the new class starts with none
           restore_status = CASE WHEN d.storage_class = v.storage_class
                                 THEN d.restore_status ELSE '' END,
           restore_requested_at = CASE WHEN d.storage_class = v.storage_class
                                       THEN d.restore_requested_at END,
           restore_expires_at = CASE WHEN d.storage_class = v.storage_class
                                     THEN d.restore_expires_at END
      FROM unnest(%(ids)s::uuid[], %(classes)s::text[], %(versions)s::text[], %(etags)s::text[])
           AS v(id, storage_class, version_id, etag)
     WHERE d.tenant_id = %(tenant)s AND d.id = v.id
"""
_VERSIONS_RECORD = """
    UPDATE document_versions AS dv
       SET version_id = v.version_id,
           -- a new object version: its copy in the DR bucket is due again
           dr_replicated_at = NULL, dr_pending_since = %(now)s
      FROM unnest(%(ids)s::uuid[], %(keys)s::text[], %(versions)s::text[])
           AS v(document_id, storage_key, version_id)
     WHERE dv.tenant_id = %(tenant)s AND dv.document_id = v.document_id
       AND dv.storage_key = v.storage_key
 RETURNING dv.id
"""


def _classes_record(tenant_id: uuid.UUID, copies: list[_Copy], now: datetime) -> None:
    """Record each document's new class, version and ETag, clear its claim and any restore
    state (it concerned the old object version), fix its version row, and log each change."""
    moves = [(copy.document, copy.change) for copy in copies if copy.change is not None]
    if not moves:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            _DOCUMENTS_RECORD,
            {
                "tenant": tenant_id,
                "now": now,
                "ids": [document.pk for document, _ in moves],
                "classes": [change.storage_class for _, change in moves],
                "versions": [change.version_id or d.version_id for d, change in moves],
                "etags": [change.etag or document.etag for document, change in moves],
            },
        )
        versioned = [(document, change) for document, change in moves if change.version_id]
        if versioned:
            cursor.execute(
                _VERSIONS_RECORD,
                {
                    "tenant": tenant_id,
                    "now": now,
                    "ids": [document.pk for document, _ in versioned],
                    "keys": [document.storage_key for document, _ in versioned],
                    "versions": [change.version_id for _, change in versioned],
                },
            )
            rewritten = [row[0] for row in cursor.fetchall()]
            replication.versions_replicate_later(tenant_id=tenant_id, version_ids=rewritten)
    documents_access_record_many(
        tenant_id=tenant_id,
        action=AccessAction.TIER_CHANGE,
        documents_and_data=[
            (
                copy.document,
                {"from_class": copy.document.storage_class, "to_class": copy.change.storage_class},
            )
            for copy in copies
            if copy.change is not None
        ],
    )


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

    Idempotent and resumable. Works in batches of `batch_size`: each batch is claimed in one
    transaction in the tenant's context (rows locked with SKIP LOCKED, so two runs never move
    the same document), copied on a pool of DOCUMENT_TIERING_WORKERS threads, then recorded
    in one transaction. Stops after `limit` documents, setting `more` when others are still
    due; `after` resumes past a document id. A document whose copy or update fails is counted
    as failed and left for the next run. When the caller holds a transaction, the claims are
    not durable, so each document is checked, copied and recorded in turn (module docstring).
    """
    tenant_uuid = db.require_tenant_context(tenant_id)
    now = now or timezone.now()
    batch_size = batch_size or settings.DOCUMENT_TIER_BATCH_SIZE
    documents = store.documents_store()
    report = TieringReport(tenant_id=tenant_uuid)
    cursor = uuid.UUID(str(after)) if after else None
    one_by_one = transaction.get_connection().in_atomic_block
    with ThreadPoolExecutor(
        max_workers=max(1, settings.DOCUMENT_TIERING_WORKERS), thread_name_prefix="tiering"
    ) as pool:
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
            if one_by_one:
                outcomes = [
                    _move_claimed(document, document.target, documents=documents, now=now)
                    for document in batch
                ]
            else:
                copies = list(pool.map(lambda d: _copy(d, d.target, documents=documents), batch))
                _copies_record(tenant_uuid, copies, now)
                outcomes = [copy.outcome for copy in copies]
            for document, outcome in zip(batch, outcomes, strict=True):
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


def _claims_release(
    tenant_id: uuid.UUID, documents: list[Document], *, forget_etag: list[Document] | None = None
) -> None:
    """Clear the claims of documents not moved. Those in `forget_etag` (their copy may have
    been made) also lose their ETag, so the next run reads their object before copying."""
    forget = {document.pk for document in forget_etag or []}
    try:
        with transaction.atomic():
            rows = Document.objects.for_tenant(tenant_id)
            kept = [document.pk for document in documents if document.pk not in forget]
            if kept:
                rows.filter(pk__in=kept).update(tiering_target="", tiering_started_at=None)
            if forget:
                rows.filter(pk__in=forget).update(
                    tiering_target="", tiering_started_at=None, etag=""
                )
    except DatabaseError:
        pass  # the claims stay: the sweep finishes these documents in a few minutes


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
    if outcome in NOT_MOVED:
        _claims_release(
            document.tenant_id, [document], forget_etag=[document] if outcome == FAILED else []
        )
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
        if outcome == DRIFTED:
            raise TierChangeError(
                "the stored object is not the document's current version (changed or deleted "
                "outside the application): run reconcile_storage"
            )
        return outcome
