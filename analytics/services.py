"""Deliver the outbox to ClickHouse: each event once, none lost.

Per tenant, in batches, each in three steps:

1. **Claim** (one committed PostgreSQL transaction): pick up to N pending rows and stamp them with
   a new `batch_token`. A batch that was claimed before and not delivered (ClickHouse was down, or
   the process died) is re-sent first, with the same rows and the same token.
2. **Insert** into ClickHouse with `insert_deduplication_token = batch_token`. ClickHouse keeps
   the recent tokens (`non_replicated_deduplication_window`, or the replicated log on a cluster)
   and ignores a block whose token it has already seen, so a batch delivered but not yet marked
   (a crash between steps 2 and 3) is not counted twice when it is re-sent.
3. **Mark** the rows sent (another transaction), and bump the tenant's dashboard generation so
   its cached charts are recomputed.

ClickHouse unreachable: the rows stay pending (the claim is released, the token kept) with the
error and attempt count, and the next run tries again. ClickHouse rejecting the data (a
constraint, a type): the batch is retried row by row, each row with its own token; rows that
still fail are set aside as `rejected` with ClickHouse's error (staff can requeue them in the
admin), the others are delivered.

The drain crosses tenants, but RLS lets no query read every tenant's outbox rows outside the
read-only staff mode. So the system job lists tenants (a table without RLS) and drains each
inside its own `tenant_context`: the database still checks every read and write, and no new
bypassing policy is needed.
"""

from __future__ import annotations

import json
import logging
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from analytics import clickhouse, dashboards
from metis.events import recorder
from metis.events.models import EventOutbox, OutboxStatus
from tenants import db
from tenants.models import Tenant

logger = logging.getLogger(__name__)

EVENT_COLUMNS = ["event_id", "tenant_id", "event_type", "event_data", "user_id", "timestamp"]
# A claim older than this is presumed abandoned (its process died) and is re-sent.
CLAIM_TIMEOUT = timedelta(minutes=2)
MAX_ERROR_CHARS = 2000
SESSION_BATCHES = 10  # batches sent per opening of ClickHouse


@dataclass
class DrainResult:
    sent: int = 0
    rejected: int = 0
    unavailable: str = ""  # the error, when ClickHouse could not be reached
    tenants: list[uuid.UUID] = field(default_factory=list)  # tenants that got new events

    def add(self, other: DrainResult) -> None:
        self.sent += other.sent
        self.rejected += other.rejected
        self.unavailable = self.unavailable or other.unavailable
        self.tenants += other.tenants


def event_row(event: EventOutbox | ClaimedEvent) -> list:
    """Return the ClickHouse `events` row for an outbox row."""
    data = dict(event.data) if isinstance(event.data, dict) else {"value": event.data}
    if event.staff_id is not None:
        data.setdefault("staff_id", event.staff_id)
    return [
        event.pk,
        event.tenant_id,
        event.event_type,
        json.dumps(data, sort_keys=True, separators=(",", ":"), default=str),
        event.user_id,
        event.occurred_at,
    ]


# Claim in one statement: lock (skipping rows another drain holds), stamp and return the batch.
# Raw SQL because Django's UPDATE cannot RETURNING; RLS still applies (tenant_context).
_CLAIM_SQL = """
    UPDATE analytics_event_outbox SET batch_token = %(token)s, claimed_at = %(now)s
    WHERE id IN (
        SELECT id FROM analytics_event_outbox
        WHERE tenant_id = %(tenant)s AND status = 'pending' AND {condition}
        ORDER BY occurred_at, id LIMIT %(size)s
        FOR UPDATE SKIP LOCKED
    )
    RETURNING id, tenant_id, event_type, data, user_id, staff_id, occurred_at, attempts
"""
_NEW_ROWS = "batch_token IS NULL"
_RETRY_ROWS = "batch_token = %(token)s"


@dataclass(slots=True)
class ClaimedEvent:
    """An outbox row as the drain holds it (lighter than a model instance)."""

    pk: uuid.UUID
    tenant_id: uuid.UUID
    event_type: str
    data: dict
    user_id: uuid.UUID | None
    staff_id: int | None
    occurred_at: datetime
    attempts: int
    batch_token: uuid.UUID | None = None


def _claimed(cursor) -> list[ClaimedEvent]:
    rows = [ClaimedEvent(*row) for row in cursor.fetchall()]
    for row in rows:
        if isinstance(row.data, str):  # Django hands jsonb over as text
            row.data = json.loads(row.data)
    rows.sort(key=lambda row: (row.occurred_at, str(row.pk)))
    return rows


def _claim_batch(tenant_id: uuid.UUID, size: int) -> tuple[uuid.UUID | None, list[ClaimedEvent]]:
    """Return (token, rows) of the next batch to send, claimed and committed; (None, []) if none.

    A batch claimed earlier and not delivered (its claim released after a failure, or older
    than CLAIM_TIMEOUT: its drain died) goes first, with its original token and rows.
    """
    now = timezone.now()
    with db.tenant_context(tenant_id), connection.cursor() as cursor:
        retry = (
            EventOutbox.objects.for_tenant(tenant_id)
            .pending()
            .filter(batch_token__isnull=False)
            .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - CLAIM_TIMEOUT))
            .order_by("occurred_at")
            .values_list("batch_token", flat=True)
            .first()
        )
        token, condition = (retry, _RETRY_ROWS) if retry else (uuid.uuid4(), _NEW_ROWS)
        parameters = {"token": token, "now": now, "tenant": tenant_id, "size": size}
        cursor.execute(_CLAIM_SQL.format(condition=condition), parameters)
        rows = _claimed(cursor)
    return (token, rows) if rows else (None, [])


def _mark(tenant_id: uuid.UUID, ids: list[uuid.UUID], **values) -> None:
    with db.tenant_context(tenant_id):
        EventOutbox.objects.for_tenant(tenant_id).filter(pk__in=ids).update(**values)


def _release_after_failure(tenant_id: uuid.UUID, rows: list[ClaimedEvent], error: str) -> None:
    """Keep the rows pending (and their token) for the next run, noting the error."""
    with db.tenant_context(tenant_id):
        EventOutbox.objects.for_tenant(tenant_id).pending().filter(
            pk__in=[r.pk for r in rows]
        ).update(claimed_at=None, attempts=F("attempts") + 1, last_error=error[:MAX_ERROR_CHARS])


def _deliver_row_by_row(client, tenant_id: uuid.UUID, rows: list[ClaimedEvent]) -> DrainResult:
    """Insert each row alone (its own token): deliver the good ones, set aside the rejected.

    Each row first becomes a batch of its own in PostgreSQL (token derived from its id), so
    if this pass stops half-way, a retry re-sends single rows under their own tokens, never
    the shrunken remainder under the old batch token (which ClickHouse would wrongly drop).
    """
    result = DrainResult()
    with db.tenant_context(tenant_id):
        for row in rows:
            row.batch_token = uuid.uuid5(uuid.NAMESPACE_URL, f"metis-event:{row.pk}")
            EventOutbox.objects.filter(pk=row.pk).update(batch_token=row.batch_token)
    for index, row in enumerate(rows):
        try:
            client.insert(
                "events",
                [event_row(row)],
                column_names=EVENT_COLUMNS,
                settings={"insert_deduplication_token": str(row.batch_token)},
            )
        except Exception as exc:
            if not clickhouse.is_rejection(exc):  # the rest waits for the next run
                _release_after_failure(tenant_id, rows[index:], f"{type(exc).__name__}: {exc}")
                result.unavailable = str(exc) or type(exc).__name__
                return result
            logger.warning("ClickHouse rejected event %s: %s", row.pk, exc)
            _mark(
                tenant_id,
                [row.pk],
                status=OutboxStatus.REJECTED,
                claimed_at=None,
                attempts=row.attempts + 1,
                last_error=str(exc)[:MAX_ERROR_CHARS],
            )
            result.rejected += 1
        else:
            _mark(
                tenant_id,
                [row.pk],
                status=OutboxStatus.SENT,
                sent_at=timezone.now(),
                attempts=row.attempts + 1,
                last_error="",
            )
            result.sent += 1
    return result


def _deliver(tenant_id: uuid.UUID, token: uuid.UUID, rows: list[ClaimedEvent]) -> DrainResult:
    try:
        with clickhouse.session() as client:
            try:
                client.insert(
                    "events",
                    [event_row(r) for r in rows],
                    column_names=EVENT_COLUMNS,
                    settings={"insert_deduplication_token": str(token)},
                )
            except Exception as exc:
                if not clickhouse.is_rejection(exc):
                    raise
                logger.info("ClickHouse refused batch %s (%s); retrying row by row", token, exc)
                return _deliver_row_by_row(client, tenant_id, rows)
    except Exception as exc:  # unreachable, or a server error that may pass: try again later
        logger.warning("ClickHouse did not take batch %s of tenant %s: %s", token, tenant_id, exc)
        _release_after_failure(tenant_id, rows, f"{type(exc).__name__}: {exc}")
        return DrainResult(unavailable=str(exc) or type(exc).__name__)
    with db.tenant_context(tenant_id):
        EventOutbox.objects.for_tenant(tenant_id).pending().filter(batch_token=token).update(
            status=OutboxStatus.SENT,
            sent_at=timezone.now(),
            attempts=F("attempts") + 1,
            last_error="",
        )
    return DrainResult(sent=len(rows))


def outbox_drain_tenant(
    *, tenant_id: uuid.UUID | str, batch_size: int | None = None, max_batches: int | None = None
) -> DrainResult:
    """Deliver `tenant_id`'s pending events to ClickHouse, batch by batch. Idempotent.

    Stops at the first batch ClickHouse cannot take (its rows stay pending) or when no rows are
    left. Must not run inside a transaction: each claim has to commit before its insert.
    """
    if transaction.get_connection().in_atomic_block:
        raise RuntimeError("outbox_drain_tenant commits per batch: call it outside a transaction")
    tenant_id = db.parse_tenant_id(tenant_id)
    size = batch_size or settings.ANALYTICS_OUTBOX_BATCH_SIZE
    total = DrainResult()
    batches = 0
    with ExitStack() as held:
        while max_batches is None or batches < max_batches:
            token, rows = _claim_batch(tenant_id, size)
            if not rows:
                break
            if batches % SESSION_BATCHES == 0:
                # Keep ClickHouse open across a few batches (opening the embedded engine costs
                # ~0.1 s), then let go so the web and other processes get their turn.
                held.close()
                try:
                    held.enter_context(clickhouse.session())
                except Exception as exc:
                    _release_after_failure(tenant_id, rows, f"{type(exc).__name__}: {exc}")
                    total.unavailable = str(exc) or type(exc).__name__
                    break
            batches += 1
            result = _deliver(tenant_id, token, rows)
            total.add(result)
            if result.unavailable:
                break
    if total.sent:
        total.tenants.append(tenant_id)
        dashboards.invalidate(tenant_id)
    return total


def outbox_drain(*, batch_size: int | None = None) -> DrainResult:
    """Deliver every tenant's pending events, tenant by tenant. Idempotent.

    Inactive tenants too: their events happened. Stops early when ClickHouse is unavailable.
    """
    total = DrainResult()
    for tenant_id in Tenant.objects.order_by("pk").values_list("pk", flat=True):
        total.add(outbox_drain_tenant(tenant_id=tenant_id, batch_size=batch_size))
        if total.unavailable:
            break
    return total


def outbox_requeue_rejected(*, tenant_id: uuid.UUID | str, ids: list[uuid.UUID]) -> int:
    """Put rejected rows back in the queue (after the cause was fixed); return how many."""
    db.require_tenant_context(tenant_id)
    return (
        EventOutbox.objects.for_tenant(tenant_id)
        .rejected()
        .filter(pk__in=ids)
        .update(status=OutboxStatus.PENDING, batch_token=None, claimed_at=None)
    )


def outbox_purge_sent(*, older_than: timedelta | None = None) -> int:
    """Delete delivered rows older than ANALYTICS_OUTBOX_KEEP_DAYS; return how many. Idempotent."""
    age = timedelta(days=settings.ANALYTICS_OUTBOX_KEEP_DAYS) if older_than is None else older_than
    cutoff = timezone.now() - age
    deleted = 0
    for tenant_id in Tenant.objects.values_list("pk", flat=True):
        with db.tenant_context(tenant_id):
            deleted += (
                EventOutbox.objects.for_tenant(tenant_id)
                .filter(status=OutboxStatus.SENT, sent_at__lt=cutoff)
                .delete()[0]
            )
    return deleted


def outbox_record_history(*, tenant_id: uuid.UUID, history: list[tuple]) -> int:
    """Write past events to the outbox (demo seeding, imports); return how many.

    `history` holds (occurred_at, event_type, data, user_id) tuples; the types are checked like
    record_event's. The drain delivers them like any other event.
    """
    unknown = {event_type for _, event_type, _, _ in history} - recorder.event_types()
    if unknown:
        raise ValueError(f"unknown event types: {sorted(unknown)}")
    db.require_tenant_context(tenant_id)
    with transaction.atomic():
        created = EventOutbox.objects.bulk_create(
            [
                EventOutbox(
                    tenant_id=tenant_id,
                    occurred_at=occurred_at,
                    event_type=event_type,
                    data=data,
                    user_id=user_id,
                )
                for occurred_at, event_type, data, user_id in history
            ],
            batch_size=1000,
        )
    return len(created)
