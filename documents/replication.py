"""A second region for documents: every stored version copied to the DR bucket, verified.

On AWS, S3 replication copies the objects (storage_setup writes the rule); elsewhere (SeaweedFS)
nothing does, so the replicator here copies each version: enqueued when a version is stored
(upload, replace, tiering), and swept every few minutes for anything missed. Either way, a
version's row says whether its copy exists: the replicator records a native copy it finds
(same version id in the DR bucket, same ETag) instead of making its own.

The rows' `dr_*` fields (DocumentVersion) hold the state; a version is due while
`dr_replicated_at` is NULL, since `dr_pending_since` (the lag figure's clock). Tiering rewrites
a version in place (a new version id), which makes it due again.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Min
from django.utils import timezone

from documents.models import DocumentVersion
from metis.objectstore import replica, store
from metis.objectstore.errors import STORE_ERRORS, describe, error_status
from tenants import db
from tenants.tasks import enqueue_for_tenant

logger = logging.getLogger(__name__)

COPIED, FOUND, ALREADY, GONE, FAILED = "copied", "found", "already", "gone", "failed"
SUPERSEDED = "superseded"  # tiering rewrote the version while it was copied: its task copies it

# Versions one sweep task copies before it sends the next batch.
SWEEP_BATCH = 200


def dr_enabled() -> bool:
    return bool(settings.DOCUMENTS_DR_BUCKET)


# --- Enqueueing ---------------------------------------------------------------------------------


def versions_replicate_later(*, tenant_id: uuid.UUID | str, version_ids: list[int]) -> None:
    """Send the copy of these versions once the current transaction commits (no DR: nothing)."""
    if not dr_enabled() or not version_ids:
        return
    from documents import tasks  # tasks imports this module

    enqueue_for_tenant(tasks.replicate_versions, tenant_id, version_ids=list(version_ids))


def document_replicate_later(*, tenant_id: uuid.UUID | str, document_id: uuid.UUID) -> None:
    """Send the copy of a document's versions still due (after tiering rewrote one)."""
    if not dr_enabled():
        return
    due = (
        DocumentVersion.objects.for_tenant(tenant_id).unreplicated().filter(document_id=document_id)
    )
    version_ids = list(due.values_list("pk", flat=True))
    versions_replicate_later(tenant_id=tenant_id, version_ids=version_ids)


# --- Copying ------------------------------------------------------------------------------------


def _native_copy(version: DocumentVersion, dr: store.ObjectStore) -> replica.Replica | None:
    """S3 replication keeps the version id: a copy it made has the source's id and ETag."""
    if not settings.DOCUMENTS_DR_REPLICATION_ROLE_ARN or not version.version_id:
        return None
    source = store.documents_store().head(version.storage_key, version_id=version.version_id)
    found = dr.head(version.storage_key, version_id=version.version_id)
    if source is None or found is None or found.get("ETag") != source.get("ETag"):
        return None
    return replica.Replica(version.version_id, found["ETag"], version.sha256)


@db.tenant_context_required
def version_replicate(*, version_id: int) -> str:
    """Copy one stored version to the DR bucket and record it; return the outcome. Idempotent:
    a version already copied is left alone, and a copy is recorded only for the version the row
    still names (tiering may have rewritten it meanwhile)."""
    dr = store.documents_dr_store()
    tenant_id = db.require_tenant_context()
    rows = DocumentVersion.objects.for_tenant(tenant_id)
    version = rows.filter(pk=version_id).first()
    if dr is None or version is None:
        return GONE
    if version.is_replicated():
        return ALREADY
    try:
        made = _native_copy(version, dr)
        outcome = FOUND if made else COPIED
        if made is None:
            made = replica.version_copy(
                source=store.documents_store(),
                target=dr,
                key=version.storage_key,
                version_id=version.version_id,
                sha256=version.sha256,
            )
    except replica.ReplicaMismatch as error:
        logger.error("not replicating version %s: %s", version.pk, error)
        return FAILED
    except ClientError as error:  # a refusal (no such version, archived): the sweep tries again
        logger.warning("replicating version %s failed: %s", version.pk, describe(error))
        return FAILED
    with transaction.atomic():
        recorded = rows.filter(pk=version.pk, version_id=version.version_id).update(
            dr_source_version_id=version.version_id,
            dr_version_id=made.version_id,
            dr_replicated_at=timezone.now(),
        )
    if not recorded and not rows.filter(pk=version.pk).exists():
        _forget_copy(dr, version.storage_key, made.version_id)  # erased while we copied
        return GONE
    return outcome if recorded else SUPERSEDED


def _forget_copy(dr: store.ObjectStore, key: str, version_id: str) -> None:
    try:
        if version_id:
            dr.client.delete_object(Bucket=dr.bucket, Key=key, VersionId=version_id)
        else:
            dr.purge(key)
    except STORE_ERRORS:
        logger.warning("could not delete the DR copy of %s; the next erasure run does", key)


@dataclass
class ReplicationReport:
    tenant_id: uuid.UUID
    outcomes: Counter
    more: bool = False  # stopped at SWEEP_BATCH with versions still due after `last_id`
    last_id: int | None = None


@db.tenant_context_required
def versions_replicate(
    *, version_ids: list[int] | None = None, after: int | None = None
) -> ReplicationReport:
    """Copy the given versions, or (None) a batch of the tenant's due ones after id `after`.

    The sweep pages by id: a version that keeps failing (its source archived, say) is passed
    over by the next batch, not copied again and again by each one.
    """
    tenant_id = db.require_tenant_context()
    outcomes: Counter = Counter()
    more = False
    if version_ids is None:
        due = DocumentVersion.objects.for_tenant(tenant_id).unreplicated()
        if after is not None:
            due = due.filter(pk__gt=after)
        batch = list(due.order_by("pk").values_list("pk", flat=True)[: SWEEP_BATCH + 1])
        more, version_ids = len(batch) > SWEEP_BATCH, batch[:SWEEP_BATCH]
    for version_id in version_ids:
        outcomes[version_replicate(version_id=version_id)] += 1
    last_id = version_ids[-1] if version_ids else None
    return ReplicationReport(tenant_id, outcomes, more, last_id)


# --- The lag figure -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplicationLag:
    pending: int
    oldest_seconds: float  # 0 when nothing is due


def replication_lag() -> ReplicationLag:
    """Versions not yet in the DR bucket and how long the oldest has waited (every tenant's:
    call inside all_tenants_context)."""
    figures = DocumentVersion.objects.unreplicated().aggregate(
        pending=Count("*"), oldest=Min("dr_pending_since")
    )
    oldest = figures["oldest"]
    age = (timezone.now() - oldest).total_seconds() if oldest else 0.0
    return ReplicationLag(figures["pending"], max(age, 0.0))


# --- Is the primary up? -------------------------------------------------------------------------

# (endpoint, bucket) → (time.monotonic() of the answer, down?): one probe per process every
# DOCUMENTS_PRIMARY_CHECK_SECONDS at most, however many pages ask.
_primary_answers: dict[tuple[str, str], tuple[float, bool]] = {}


def _answers(probe: store.ObjectStore) -> bool:
    try:
        probe.client.head_bucket(Bucket=probe.bucket)
    except ClientError as error:
        return (error_status(error) or 0) < 500  # a refusal is an answer; a 5xx is an outage
    except BotoCoreError:  # refused, timed out, reset
        return False
    return True


def primary_down() -> bool:
    """True when there is a DR bucket and the primary bucket does not answer (connection
    refused, a timeout, a 5xx). The probe gives up within DOCUMENTS_PRIMARY_PROBE_TIMEOUT and
    its answer is kept DOCUMENTS_PRIMARY_CHECK_SECONDS; without a DR bucket nothing is asked."""
    if not dr_enabled():
        return False
    probe = store.documents_probe_store()
    where = (probe.endpoint.url, probe.bucket)
    now = time.monotonic()
    kept = _primary_answers.get(where)
    if kept is not None and now - kept[0] < settings.DOCUMENTS_PRIMARY_CHECK_SECONDS:
        return kept[1]
    down = not _answers(probe)
    _primary_answers[where] = (now, down)
    if down:
        logger.warning("the primary document store %s does not answer: serving the DR copy", where)
    return down


def dr_download_url(*, version: DocumentVersion, filename: str, content_type: str) -> str | None:
    """A presigned URL of the version's copy in the DR bucket, or None when it has none yet."""
    dr = store.documents_dr_store()
    if dr is None or not version.is_replicated():
        return None
    return dr.presigned_get_url(
        key=version.storage_key,
        version_id=version.dr_version_id,
        filename=filename,
        content_type=content_type,
    )
