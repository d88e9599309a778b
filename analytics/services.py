"""Deliver the outbox to ClickHouse: each event once, none lost.

Per tenant, in batches, each in three steps:

1. **Claim** (one committed PostgreSQL transaction, one statement): take up to N pending rows
   out of the outbox (`DELETE ... RETURNING`) into one new `events_outbox_batch` row under a new
   token; the statement answers with the batch as ClickHouse input text. A batch left behind
   (ClickHouse was down, or the process died, perhaps after ClickHouse took it) is re-sent
   first, with the same rows in the same order and the same token.
2. **Insert** into ClickHouse with `insert_deduplication_token = token`. ClickHouse keeps
   the recent tokens (`non_replicated_deduplication_window`, or the replicated log on a cluster)
   and ignores a block whose token it has already seen, so a batch delivered but not yet deleted
   (a crash between steps 2 and 3) is not counted twice when it is re-sent.
3. **Delete** the batch row (in the next claim's transaction), and bump the tenant's dashboard
   generation so its cached charts are recomputed.

A second thread claims the next batch while ClickHouse takes the current one.

ClickHouse unreachable: the batch stays (its claim released, its token kept) with the error and
attempt count, and the next run tries again. ClickHouse rejecting the data (a constraint, a
type): the batch is split into one-event batches, each with its own token, sent one by one;
events that still fail go back to the outbox set aside as `rejected` with ClickHouse's error
(staff can requeue them in the admin), the others are delivered.

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


# The batch as ClickHouse input, written by PostgreSQL: one TabSeparated text over a relation
# `e` with the outbox's columns (the rows a claim just deleted, or a stored batch unnested), so
# no event becomes a Python object. The columns are EVENT_COLUMNS as event_row makes them: data
# with staff_id added (jsonb's text: any JSON reader gets what json.dumps gave), the time as
# Unix seconds (no time zone to agree on). TabSeparated escapes \, tab, newline and CR (jsonb
# text holds no raw control characters) and writes NULL as \N.
_TSV_SQL = r"""string_agg(concat_ws(E'\t',
        e.id,
        e.tenant_id,
        replace(replace(replace(replace(e.event_type, '\', '\\'), E'\t', '\t'), E'\n', '\n'),
                E'\r', '\r'),
        replace((CASE WHEN jsonb_typeof(e.data) <> 'object' THEN jsonb_build_object('value', e.data)
                      WHEN e.staff_id IS NULL OR e.data ? 'staff_id' THEN e.data
                      ELSE e.data || jsonb_build_object('staff_id', e.staff_id) END)::text,
                '\', '\\'),
        coalesce(e.user_id::text, '\N'),
        extract(epoch FROM e.occurred_at)
    ) || E'\n', '' {order})"""
_BATCH_COLUMNS = (
    "token, tenant_id, claimed_at, attempts, last_error, size, oldest_at, "
    "event_ids, event_types, event_data, user_ids, staff_ids, occurred_ats"
)
_UNNEST = (
    "unnest(b.event_ids, b.event_types, b.event_data, b.user_ids, b.staff_ids, b.occurred_ats) "
    "WITH ORDINALITY AS e(id, event_type, data, user_id, staff_id, occurred_at, n)"
)
# Claim in one statement: DELETE ... RETURNING takes up to `size` pending rows out of the outbox,
# the same rows become one batch row (their columns as arrays, in the order sent), and the answer
# is the batch as ClickHouse input. One round trip, one commit; each event costs one deleted
# row, not a new row version. Raw SQL because Django cannot DELETE ... RETURNING; RLS still
# applies (tenant_context). The picked rows are read in the order of `outbox_pending` (by
# occurred_at alone: a tie-break on id made PostgreSQL read and sort the whole backlog) and
# deleted by `ctid = ANY(ARRAY(...))`, a TID scan: no second index lookup per row. The locked
# rows cannot move before the DELETE. All the aggregates of one query read the rows in the same
# order, so the arrays and the text agree.
_CLAIM_SQL = f"""
    WITH e AS (
        DELETE FROM analytics_event_outbox
        WHERE ctid = ANY(ARRAY(
            SELECT ctid FROM analytics_event_outbox
            WHERE tenant_id = %(tenant)s AND status = 'pending'
            ORDER BY occurred_at LIMIT %(size)s
            FOR UPDATE SKIP LOCKED
        ))
        RETURNING id, tenant_id, event_type, data, user_id, staff_id, occurred_at
    ), batch AS (
        INSERT INTO events_outbox_batch ({_BATCH_COLUMNS})
        SELECT %(token)s, %(tenant)s, %(now)s, 0, '', count(*), min(occurred_at),
            array_agg(id), array_agg(event_type), array_agg(data), array_agg(user_id),
            array_agg(staff_id), array_agg(occurred_at)
        FROM e HAVING count(*) > 0
    )
    SELECT count(*), {_TSV_SQL.format(order="")} FROM e
"""
# A batch left behind (its claim released after a failure, or older than CLAIM_TIMEOUT: its
# drain died, perhaps after ClickHouse took it): claimed again, its rows in their first order.
_ORPHAN_SQL = f"""
    WITH b AS (
        UPDATE events_outbox_batch SET claimed_at = %(now)s
        WHERE token = (
            SELECT token FROM events_outbox_batch
            WHERE tenant_id = %(tenant)s AND (claimed_at IS NULL OR claimed_at < %(stale)s)
            ORDER BY oldest_at LIMIT 1
            FOR UPDATE SKIP LOCKED
        )
        RETURNING *
    )
    SELECT b.token, count(e.id), coalesce({_TSV_SQL.format(order="ORDER BY e.n")}, '')
    FROM b LEFT JOIN LATERAL (SELECT b.tenant_id, u.* FROM {_UNNEST.replace("AS e(", "AS u(")}) e
        ON true
    GROUP BY b.token
"""
_BATCH_EVENTS_SQL = f"""
    SELECT e.id, b.tenant_id, e.event_type, e.data, e.user_id, e.staff_id, e.occurred_at,
        b.attempts
    FROM events_outbox_batch b, {_UNNEST}
    WHERE b.tenant_id = %(tenant)s AND b.token = %(token)s
    ORDER BY e.n
"""
# Each event of a refused batch becomes a batch of its own, under a token derived from its id.
_SPLIT_SQL = f"""
    WITH b AS (
        DELETE FROM events_outbox_batch WHERE tenant_id = %(tenant)s AND token = %(token)s
        RETURNING *
    )
    INSERT INTO events_outbox_batch ({_BATCH_COLUMNS})
    SELECT t.token, b.tenant_id, %(now)s, b.attempts, b.last_error, 1, e.occurred_at,
        ARRAY[e.id], ARRAY[e.event_type], ARRAY[e.data], ARRAY[e.user_id], ARRAY[e.staff_id],
        ARRAY[e.occurred_at]
    FROM b, {_UNNEST}
    JOIN unnest(%(ids)s::uuid[], %(tokens)s::uuid[]) AS t(id, token) ON t.id = e.id
"""
# A batch ClickHouse refuses for good goes back to the outbox, set aside with the error.
_SET_ASIDE_SQL = f"""
    WITH b AS (
        DELETE FROM events_outbox_batch WHERE tenant_id = %(tenant)s AND token = %(token)s
        RETURNING *
    )
    INSERT INTO analytics_event_outbox (id, tenant_id, event_type, data, user_id, staff_id,
        occurred_at, status, attempts, last_error)
    SELECT e.id, b.tenant_id, e.event_type, e.data, e.user_id, e.staff_id, e.occurred_at,
        'rejected', b.attempts + 1, %(error)s
    FROM b, {_UNNEST}
"""
_WAITING_SQL = """
    SELECT EXISTS (
        SELECT FROM analytics_event_outbox WHERE tenant_id = %(tenant)s AND status = 'pending'
    ) OR EXISTS (SELECT FROM events_outbox_batch WHERE tenant_id = %(tenant)s)
"""
_DELIVERED_SQL = """
    DELETE FROM events_outbox_batch WHERE tenant_id = %(tenant)s AND token = ANY(%(tokens)s)
"""
_RELEASE_SQL = """
    UPDATE events_outbox_batch
    SET claimed_at = NULL, attempts = attempts + %(attempt)s,
        last_error = CASE WHEN %(error)s = '' THEN last_error ELSE %(error)s END
    WHERE tenant_id = %(tenant)s AND token = ANY(%(tokens)s)
"""


@dataclass(slots=True)
class Batch:
    """A claimed batch: its token, its rows as ClickHouse TabSeparated input, and whether it
    was left behind by an earlier drain (then more may wait)."""

    token: uuid.UUID
    tsv: bytes
    size: int
    orphan: bool = False


@dataclass(slots=True)
class ClaimedEvent:
    """An event of a batch as the row-by-row pass holds it (lighter than a model instance)."""

    pk: uuid.UUID
    tenant_id: uuid.UUID
    event_type: str
    data: dict
    user_id: uuid.UUID | None
    staff_id: int | None
    occurred_at: datetime
    attempts: int
    batch_token: uuid.UUID | None = None


def single_event_token(event_id: uuid.UUID) -> uuid.UUID:
    """Return the token of the one-event batch an event of a refused batch becomes."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"metis-event:{event_id}")


def _execute(tenant_id: uuid.UUID, sql: str, **parameters) -> int:
    """Run `sql` in its own committed transaction in the tenant's context; return the rowcount."""
    with db.tenant_context(tenant_id), connection.cursor() as cursor:
        cursor.execute(sql, {"tenant": tenant_id, **parameters})
        return cursor.rowcount


def _batch_events(tenant_id: uuid.UUID, token: uuid.UUID) -> list[ClaimedEvent]:
    """Return the events of batch `token`, in the order they were sent."""
    with db.tenant_context(tenant_id), connection.cursor() as cursor:
        cursor.execute(_BATCH_EVENTS_SQL, {"tenant": tenant_id, "token": token})
        rows = [ClaimedEvent(*row) for row in cursor.fetchall()]
    for row in rows:
        if isinstance(row.data, str):  # Django hands jsonb over as text
            row.data = json.loads(row.data)
    return rows


def _release(tenant_id: uuid.UUID, tokens: list[uuid.UUID], error: str = "") -> None:
    """Give the batches back for the next run (same tokens), counting an attempt if it failed."""
    _execute(
        tenant_id,
        _RELEASE_SQL,
        tokens=tokens,
        attempt=1 if error else 0,
        error=error[:MAX_ERROR_CHARS],
    )


def _waiting(tenant_id: uuid.UUID) -> bool:
    """Return whether the tenant has events to deliver (pending, or in a batch)."""
    with db.tenant_context(tenant_id), connection.cursor() as cursor:
        cursor.execute(_WAITING_SQL, {"tenant": tenant_id})
        return cursor.fetchone()[0]


def _claim_batch(
    tenant_id: uuid.UUID,
    size: int,
    *,
    delivered: tuple[uuid.UUID, ...] = (),
    orphans: bool = True,
) -> Batch | None:
    """Return the next batch to send, claimed and committed; None if there is none.

    A batch left behind by an earlier drain goes first, with its original token and rows
    (`orphans=False` skips the look: the previous claim found none). `delivered`: tokens of
    batches ClickHouse took, deleted in the same transaction (one commit per batch, not two).
    """
    now = timezone.now()
    with db.tenant_context(tenant_id), connection.cursor() as cursor:
        if delivered:
            cursor.execute(_DELIVERED_SQL, {"tenant": tenant_id, "tokens": list(delivered)})
        while orphans:
            stale = now - CLAIM_TIMEOUT
            cursor.execute(_ORPHAN_SQL, {"tenant": tenant_id, "now": now, "stale": stale})
            found = cursor.fetchone()
            if found is None:
                break
            token, rows, tsv = found
            if rows:
                return Batch(token=token, tsv=tsv.encode(), size=rows, orphan=True)
            # Emptied by an erasure: nothing to send.
            cursor.execute(_DELIVERED_SQL, {"tenant": tenant_id, "tokens": [token]})
        token = uuid.uuid4()
        parameters = {"token": token, "now": now, "tenant": tenant_id, "size": size}
        cursor.execute(_CLAIM_SQL, parameters)
        rows, tsv = cursor.fetchone()
    return Batch(token=token, tsv=tsv.encode(), size=rows) if rows else None


def _deliver_row_by_row(client, tenant_id: uuid.UUID, rows: list[ClaimedEvent]) -> DrainResult:
    """Insert each event alone (its own token): deliver the good ones, set aside the rejected.

    Each event first becomes a batch of its own in PostgreSQL (token derived from its id), so
    if this pass stops half-way, a retry re-sends single events under their own tokens, never
    the shrunken remainder under the old batch token (which ClickHouse would wrongly drop).
    """
    result = DrainResult()
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
                unsent = [r.batch_token for r in rows[index:] if r.batch_token]
                _release(tenant_id, unsent, f"{type(exc).__name__}: {exc}")
                result.unavailable = str(exc) or type(exc).__name__
                return result
            logger.warning("ClickHouse rejected event %s: %s", row.pk, exc)
            _execute(
                tenant_id, _SET_ASIDE_SQL, token=row.batch_token, error=str(exc)[:MAX_ERROR_CHARS]
            )
            result.rejected += 1
        else:
            _execute(tenant_id, _DELIVERED_SQL, tokens=[row.batch_token])
            result.sent += 1
    return result


def _split(tenant_id: uuid.UUID, token: uuid.UUID) -> list[ClaimedEvent]:
    """Turn batch `token` into one-event batches (claimed by this drain); return the events."""
    rows = _batch_events(tenant_id, token)
    for row in rows:
        row.batch_token = single_event_token(row.pk)
    ids, tokens = [row.pk for row in rows], [row.batch_token for row in rows]
    _execute(tenant_id, _SPLIT_SQL, token=token, now=timezone.now(), ids=ids, tokens=tokens)
    return rows


def _deliver(tenant_id: uuid.UUID, batch: Batch) -> tuple[DrainResult, bool]:
    """Insert `batch` into ClickHouse under its token; return (result, whether to delete it).

    True: ClickHouse took the whole batch, and the caller deletes its row (with its next
    claim). A batch ClickHouse refuses goes event by event, which settles its own rows.
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
                return _deliver_row_by_row(client, tenant_id, _split(tenant_id, batch.token)), False
    except Exception as exc:  # unreachable, or a server error that may pass: try again later
        logger.warning(
            "ClickHouse did not take batch %s of tenant %s: %s", batch.token, tenant_id, exc
        )
        _release(tenant_id, [batch.token], f"{type(exc).__name__}: {exc}")
        return DrainResult(unavailable=str(exc) or type(exc).__name__), False
    return DrainResult(sent=batch.size), True


def outbox_drain_tenant(
    *, tenant_id: uuid.UUID | str, batch_size: int | None = None, max_batches: int | None = None
) -> DrainResult:
    """Deliver `tenant_id`'s pending events to ClickHouse, batch by batch. Idempotent.

    Stops at the first batch ClickHouse cannot take (its events wait in their batch) or when
    none are left. Must not run inside a transaction: each claim has to commit before its insert.
    """
    if transaction.get_connection().in_atomic_block:
        raise RuntimeError("outbox_drain_tenant commits per batch: call it outside a transaction")
    tenant_id = db.parse_tenant_id(tenant_id)
    size = batch_size or settings.ANALYTICS_OUTBOX_BATCH_SIZE
    total = DrainResult()
    batches = 0
    delivered: list[uuid.UUID] = []  # in ClickHouse, batch rows not yet deleted
    next_claim: Future[Batch | None] | None = None
    if not _waiting(tenant_id):
        return total  # an idle tenant costs one indexed query: no claim, no engine to open
    # One thread claims the next batch (and deletes the ones before) while ClickHouse takes this
    # one: PostgreSQL and ClickHouse work at the same time (chdb lets go of the GIL). The engine
    # opens while the first claim runs.
    with ExitStack() as held, ThreadPoolExecutor(max_workers=1) as claimer:
        try:
            opened, hold = 0.0, 0.0
            next_claim = claimer.submit(_claim_batch, tenant_id, size)
            while next_claim is not None:
                if time.monotonic() - opened > hold:
                    # Keep ClickHouse open across batches (opening the embedded engine costs
                    # 0.1 s or more), then let go so the web and other processes get their turn.
                    held.close()
                    opening = time.monotonic()
                    try:
                        held.enter_context(clickhouse.session())
                    except Exception as exc:
                        batch, next_claim = next_claim.result(), None
                        if batch is not None:
                            _release(tenant_id, [batch.token], f"{type(exc).__name__}: {exc}")
                        total.unavailable = str(exc) or type(exc).__name__
                        break
                    opened = time.monotonic()
                    hold = min(max(10 * (opened - opening), SESSION_SECONDS[0]), SESSION_SECONDS[1])
                batch, next_claim = next_claim.result(), None
                if batch is None:
                    break
                batches += 1
                if max_batches is None or batches < max_batches:
                    next_claim = claimer.submit(
                        _claim_batch,
                        tenant_id,
                        size,
                        delivered=tuple(delivered),
                        orphans=batch.orphan,
                    )
                    delivered = []
                result, whole = _deliver(tenant_id, batch)
                total.add(result)
                if whole:
                    delivered.append(batch.token)
                if result.unavailable:
                    break
        finally:
            # A batch claimed ahead and never sent is given back as it is (same token, no
            # attempt counted); then the claiming thread's connection is closed.
            unsent = None
            if next_claim is not None and next_claim.exception() is None:
                unsent = next_claim.result()
            if unsent is not None:
                _release(tenant_id, [unsent.token])
            claimer.submit(connections.close_all).result()
    if delivered:
        _execute(tenant_id, _DELIVERED_SQL, tokens=delivered)
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
        .update(status=OutboxStatus.PENDING)
    )


def outbox_purge_sent(*, older_than: timedelta | None = None) -> int:
    """Delete delivered rows older than ANALYTICS_OUTBOX_KEEP_DAYS; return how many. Idempotent.

    Only rows delivered before events 0003 are marked sent: a batch delivered now leaves none.
    """
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
