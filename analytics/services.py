"""Deliver the outbox to ClickHouse: each event once, none lost.

Per tenant, in batches, each in three steps:

1. **Claim** (one committed PostgreSQL transaction): pick up to N pending rows and stamp them with
   a new `batch_token`; the statement answers with the batch as ClickHouse input text. A batch
   that was claimed before and not delivered (ClickHouse was down, or the process died) is
   re-sent first, with the same rows and the same token.
2. **Insert** into ClickHouse with `insert_deduplication_token = batch_token`. ClickHouse keeps
   the recent tokens (`non_replicated_deduplication_window`, or the replicated log on a cluster)
   and ignores a block whose token it has already seen, so a batch delivered but not yet marked
   (a crash between steps 2 and 3) is not counted twice when it is re-sent.
3. **Mark** the rows sent (in the next claim's transaction), and bump the tenant's dashboard
   generation so its cached charts are recomputed.

A second thread claims the next batch while ClickHouse takes the current one.

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
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, connections, transaction
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
# How long the drain keeps the embedded engine open across batches before letting others in:
# ten times what opening it took (a tenth of the time at most goes to opening), within bounds.
SESSION_SECONDS = (1.0, 10.0)


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


# Claim in one statement whose answer is already ClickHouse's input: the UPDATE ... RETURNING
# feeds an aggregate that writes the whole batch as one TabSeparated text (one row, one round
# trip; no row becomes a Python object). The columns are EVENT_COLUMNS as event_row makes them:
# data with staff_id added (jsonb's text: any JSON reader gets what json.dumps gave), the time
# as Unix seconds (no time zone to agree on). TabSeparated escapes \, tab, newline and CR (jsonb
# text holds no raw control characters) and writes NULL as \N. Raw SQL because Django's UPDATE
# cannot RETURNING; RLS still applies (tenant_context). `= ANY(ARRAY(...))` finds the picked
# rows by primary key (`IN (...)` let the planner hash-join against a scan of the whole table,
# sent rows included).
_CLAIM_SQL = r"""
    WITH claimed AS (
        UPDATE analytics_event_outbox SET batch_token = %(token)s, claimed_at = %(now)s
        WHERE id = ANY(ARRAY(
            SELECT id FROM analytics_event_outbox
            WHERE tenant_id = %(tenant)s AND status = 'pending' AND {condition}
            ORDER BY occurred_at, id LIMIT %(size)s
            FOR UPDATE SKIP LOCKED
        ))
        RETURNING id, tenant_id, event_type, user_id, occurred_at,
            (CASE WHEN jsonb_typeof(data) <> 'object' THEN jsonb_build_object('value', data)
                  WHEN staff_id IS NULL OR data ? 'staff_id' THEN data
                  ELSE data || jsonb_build_object('staff_id', staff_id) END)::text AS event_data
    )
    SELECT count(*), string_agg(concat_ws(E'\t',
        id,
        tenant_id,
        replace(replace(replace(replace(event_type, '\', '\\'), E'\t', '\t'), E'\n', '\n'),
                E'\r', '\r'),
        replace(event_data, '\', '\\'),
        coalesce(user_id::text, '\N'),
        extract(epoch FROM occurred_at)
    ) || E'\n', '')
    FROM claimed
"""
_NEW_ROWS = "batch_token IS NULL"
_RETRY_ROWS = "batch_token = %(token)s"
_ROWS_SQL = """
    SELECT id, tenant_id, event_type, data, user_id, staff_id, occurred_at, attempts
    FROM analytics_event_outbox
    WHERE tenant_id = %(tenant)s AND status = 'pending' AND batch_token = %(token)s
    ORDER BY occurred_at, id
"""


@dataclass(slots=True)
class Batch:
    """A claimed batch: its token and its rows as ClickHouse TabSeparated input."""

    token: uuid.UUID
    tsv: bytes
    size: int


@dataclass(slots=True)
class ClaimedEvent:
    """An outbox row as the row-by-row pass holds it (lighter than a model instance)."""

    pk: uuid.UUID
    tenant_id: uuid.UUID
    event_type: str
    data: dict
    user_id: uuid.UUID | None
    staff_id: int | None
    occurred_at: datetime
    attempts: int
    batch_token: uuid.UUID | None = None


def _claimed_rows(tenant_id: uuid.UUID, token: uuid.UUID) -> list[ClaimedEvent]:
    """Return the rows of the claimed batch `token`, oldest first."""
    with db.tenant_context(tenant_id), connection.cursor() as cursor:
        cursor.execute(_ROWS_SQL, {"tenant": tenant_id, "token": token})
        rows = [ClaimedEvent(*row) for row in cursor.fetchall()]
    for row in rows:
        if isinstance(row.data, str):  # Django hands jsonb over as text
            row.data = json.loads(row.data)
    return rows


def _mark_sent(tenant_id: uuid.UUID, tokens: list[uuid.UUID]) -> None:
    EventOutbox.objects.for_tenant(tenant_id).pending().filter(batch_token__in=tokens).update(
        status=OutboxStatus.SENT,
        sent_at=timezone.now(),
        attempts=F("attempts") + 1,
        last_error="",
    )


def _claim_batch(
    tenant_id: uuid.UUID, size: int, *, delivered: tuple[uuid.UUID, ...] = ()
) -> Batch | None:
    """Return the next batch to send, claimed and committed; None if there is none.

    A batch claimed earlier and not delivered (its claim released after a failure, or older
    than CLAIM_TIMEOUT: its drain died) goes first, with its original token and rows.
    `delivered`: tokens of batches ClickHouse took, marked sent in the same transaction (one
    commit per batch, not two).
    """
    now = timezone.now()
    with db.tenant_context(tenant_id), connection.cursor() as cursor:
        if delivered:
            _mark_sent(tenant_id, list(delivered))
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
        rows, tsv = cursor.fetchone()
    return Batch(token=token, tsv=tsv.encode(), size=rows) if rows else None


def _mark(tenant_id: uuid.UUID, ids: list[uuid.UUID], **values) -> None:
    with db.tenant_context(tenant_id):
        EventOutbox.objects.for_tenant(tenant_id).filter(pk__in=ids).update(**values)


def _release_after_failure(tenant_id: uuid.UUID, error: str, *, rows: Q) -> None:
    """Keep the `rows` pending (and their tokens) for the next run, noting the error."""
    with db.tenant_context(tenant_id):
        EventOutbox.objects.for_tenant(tenant_id).pending().filter(rows).update(
            claimed_at=None, attempts=F("attempts") + 1, last_error=error[:MAX_ERROR_CHARS]
        )


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
                unsent = Q(pk__in=[r.pk for r in rows[index:]])
                _release_after_failure(tenant_id, f"{type(exc).__name__}: {exc}", rows=unsent)
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


def _deliver(tenant_id: uuid.UUID, batch: Batch) -> tuple[DrainResult, bool]:
    """Insert `batch` into ClickHouse under its token; return (result, whether to mark it).

    True: ClickHouse took the whole batch, and the caller marks it sent (with its next claim).
    A batch ClickHouse refuses goes row by row, which marks its own rows.
    """
    try:
        with clickhouse.session() as client:
            try:
                client.raw_insert(
                    "events",
                    EVENT_COLUMNS,
                    insert_block=batch.tsv,
                    fmt="TabSeparated",
                    settings={"insert_deduplication_token": str(batch.token)},
                )
            except Exception as exc:
                if not clickhouse.is_rejection(exc):
                    raise
                logger.info("ClickHouse refused batch %s (%s); row by row now", batch.token, exc)
                rows = _claimed_rows(tenant_id, batch.token)
                return _deliver_row_by_row(client, tenant_id, rows), False
    except Exception as exc:  # unreachable, or a server error that may pass: try again later
        logger.warning(
            "ClickHouse did not take batch %s of tenant %s: %s", batch.token, tenant_id, exc
        )
        error = f"{type(exc).__name__}: {exc}"
        _release_after_failure(tenant_id, error, rows=Q(batch_token=batch.token))
        return DrainResult(unavailable=str(exc) or type(exc).__name__), False
    return DrainResult(sent=batch.size), True


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
    delivered: list[uuid.UUID] = []  # in ClickHouse, not yet marked sent
    next_claim: Future[Batch | None] | None = None
    # One thread claims the next batch (and marks the ones before) while ClickHouse takes this
    # one: PostgreSQL and ClickHouse work at the same time (chdb lets go of the GIL).
    with ExitStack() as held, ThreadPoolExecutor(max_workers=1) as claimer:
        try:
            opened, hold = 0.0, 0.0
            next_claim = claimer.submit(_claim_batch, tenant_id, size)
            while next_claim is not None:
                batch, next_claim = next_claim.result(), None
                if batch is None:
                    break
                if time.monotonic() - opened > hold:
                    # Keep ClickHouse open across batches (opening the embedded engine costs
                    # 0.1 s or more), then let go so the web and other processes get their turn.
                    held.close()
                    opening = time.monotonic()
                    try:
                        held.enter_context(clickhouse.session())
                    except Exception as exc:
                        error = f"{type(exc).__name__}: {exc}"
                        _release_after_failure(tenant_id, error, rows=Q(batch_token=batch.token))
                        total.unavailable = str(exc) or type(exc).__name__
                        break
                    opened = time.monotonic()
                    hold = min(max(10 * (opened - opening), SESSION_SECONDS[0]), SESSION_SECONDS[1])
                batches += 1
                if max_batches is None or batches < max_batches:
                    next_claim = claimer.submit(
                        _claim_batch, tenant_id, size, delivered=tuple(delivered)
                    )
                    delivered = []
                result, whole = _deliver(tenant_id, batch)
                total.add(result)
                if whole:
                    delivered.append(batch.token)
                if result.unavailable:
                    break
        finally:
            # A batch claimed ahead and never sent goes back to the queue as it is (same token,
            # no attempt counted); then the claiming thread's connection is closed.
            unsent = None
            if next_claim is not None and next_claim.exception() is None:
                unsent = next_claim.result()
            if unsent is not None:
                with db.tenant_context(tenant_id):
                    EventOutbox.objects.for_tenant(tenant_id).pending().filter(
                        batch_token=unsent.token
                    ).update(claimed_at=None)
            claimer.submit(connections.close_all).result()
    if delivered:
        with db.tenant_context(tenant_id):
            _mark_sent(tenant_id, delivered)
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
