"""The outbox drain: every committed event reaches ClickHouse once; none is lost."""

import json
import socket
import uuid
from datetime import UTC, timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from analytics import services
from metis.events import recorder
from metis.events.models import EventOutbox, EventOutboxBatch, OutboxStatus
from tenants import db, events
from tests.analytics.conftest import clickhouse_rows, events_in_clickhouse
from tests.factories import TenantUserFactory, event_record


def outbox(tenant) -> list[EventOutbox]:
    with db.tenant_context(tenant.pk):
        return list(EventOutbox.objects.for_tenant(tenant).order_by("occurred_at"))


def batches(tenant) -> list[EventOutboxBatch]:
    with db.tenant_context(tenant.pk):
        return list(EventOutboxBatch.objects.for_tenant(tenant).order_by("oldest_at"))


def record(tenant, n: int, *, event_type=events.SIGN_IN, days_ago: int = 0) -> None:
    for _ in range(n):
        event = event_record(tenant=tenant, event_type=event_type, data={"n": n})
        if days_ago:
            with db.tenant_context(tenant.pk):
                EventOutbox.objects.filter(pk=event.pk).update(
                    occurred_at=event.occurred_at - timedelta(days=days_ago)
                )


def test_events_recorded_in_a_rolled_back_transaction_never_reach_clickhouse(clickhouse_db, acme):
    try:
        with db.tenant_context(acme.pk):  # the entry point's transaction
            recorder.record_event(tenant=acme, event_type=events.SIGN_IN)
            raise RuntimeError("the business write failed")
    except RuntimeError:
        pass
    with db.tenant_context(acme.pk):
        recorder.record_event(tenant=acme, event_type=events.SIGN_OUT)
    assert [e.event_type for e in outbox(acme)] == [events.SIGN_OUT]

    result = services.outbox_drain()

    assert result.sent == 1
    assert events_in_clickhouse(acme.pk) == 1
    assert services.outbox_drain().sent == 0  # nothing left


def test_a_batch_delivered_twice_counts_once(clickhouse_db, acme):
    record(acme, 3)
    record(acme, 2, days_ago=2)  # a second partition: the token covers every part of the insert
    # A drain claims the batch and ClickHouse takes it, then the process dies before PostgreSQL
    # deletes the batch row: the events wait there, under the same token.
    batch = services._claim_batch(acme.pk, 100)
    assert services._deliver(acme.pk, batch) == (services.DrainResult(sent=5), True)
    assert outbox(acme) == []
    (left,) = batches(acme)
    assert (left.token, left.size) == (batch.token, 5)
    with db.tenant_context(acme.pk):  # its claim runs out
        EventOutboxBatch.objects.update(claimed_at=left.claimed_at - services.CLAIM_TIMEOUT)

    again = services.outbox_drain_tenant(tenant_id=acme.pk)

    assert again.sent == 5  # re-sent and deleted...
    assert events_in_clickhouse(acme.pk) == 5  # ...but counted once, by a plain count()
    assert batches(acme) == [] and outbox(acme) == []


def test_a_crash_between_the_insert_and_the_commit_counts_once(clickhouse_db, acme, monkeypatch):
    record(acme, 4)
    real_execute = services._execute

    def die_before_deleting(tenant_id, sql, **parameters):
        if sql == services._DELIVERED_SQL:
            raise SystemExit("killed after ClickHouse took the batch")
        return real_execute(tenant_id, sql, **parameters)

    monkeypatch.setattr(services, "_execute", die_before_deleting)
    with pytest.raises(SystemExit):
        services.outbox_drain_tenant(tenant_id=acme.pk)
    monkeypatch.setattr(services, "_execute", real_execute)
    assert events_in_clickhouse(acme.pk) == 4
    (orphan,) = batches(acme)
    assert orphan.size == 4
    # Still claimed by the dead drain: a new one leaves it alone until the claim runs out.
    assert services.outbox_drain_tenant(tenant_id=acme.pk).sent == 0
    with db.tenant_context(acme.pk):
        EventOutboxBatch.objects.update(claimed_at=orphan.claimed_at - services.CLAIM_TIMEOUT)
    record(acme, 1)

    again = services.outbox_drain_tenant(tenant_id=acme.pk)

    assert again.sent == 5  # the orphan re-sent (and dropped by ClickHouse), the new one sent
    assert events_in_clickhouse(acme.pk) == 5
    assert batches(acme) == [] and outbox(acme) == []


def test_a_drain_claims_each_batch_in_one_statement_and_leaves_no_row(clickhouse_db, acme):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    record(acme, 5)
    with CaptureQueriesContext(connection) as queries:
        batch = services._claim_batch(acme.pk, 3, orphans=False)
    claims = [q["sql"] for q in queries if "events_outbox_batch" in q["sql"]]
    assert len(claims) == 1 and claims[0].lstrip().startswith("WITH e AS (")
    assert batch.size == 3 and len(batch.tsv.splitlines()) == 3
    (held,) = batches(acme)
    assert [str(i) for i in held.event_ids] == [
        line.split(b"\t")[0].decode() for line in batch.tsv.splitlines()
    ]  # the stored order is the order sent: a re-send is the same insert
    assert len(outbox(acme)) == 2

    assert services.outbox_drain_tenant(tenant_id=acme.pk, batch_size=2).sent == 2
    assert batches(acme) == [held]  # another drain's fresh claim: left alone
    assert services._deliver(acme.pk, batch)[1]
    assert events_in_clickhouse(acme.pk) == 5


def test_a_fresh_claim_by_another_drain_is_left_alone(clickhouse_db, acme):
    record(acme, 2)
    batch = services._claim_batch(acme.pk, 100)  # another drain is busy with these
    assert batch.size == 2
    assert services.outbox_drain_tenant(tenant_id=acme.pk).sent == 0
    assert services._deliver(acme.pk, batch)[0].sent == 2
    assert events_in_clickhouse(acme.pk) == 2


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_clickhouse_unavailable_keeps_events_and_delivers_them_later(clickhouse_db, acme, settings):
    record(acme, 4)
    settings.CLICKHOUSE_URL = f"http://default:@127.0.0.1:{_closed_port()}/{clickhouse_db}"

    down = services.outbox_drain()

    assert down.sent == 0 and down.unavailable
    (waiting,) = batches(acme)  # claimed, released, kept with its token
    assert (waiting.size, waiting.attempts, waiting.claimed_at) == (4, 1, None)
    assert "Unavailable" in waiting.last_error
    assert services.outbox_drain().unavailable  # still down: still waiting, nothing lost
    assert [(b.token, b.size) for b in batches(acme)] == [(waiting.token, 4)]
    record(acme, 1)  # new events keep arriving meanwhile

    settings.CLICKHOUSE_URL = ""  # back up
    back = services.outbox_drain()

    assert back.sent == 5 and not back.unavailable
    assert events_in_clickhouse(acme.pk) == 5
    assert batches(acme) == [] and outbox(acme) == []


def test_a_row_clickhouse_rejects_is_set_aside_with_its_error(clickhouse_db, acme):
    record(acme, 2)
    # A row record_event would refuse today (say, written by an older release): ClickHouse's
    # constraint on event_type rejects it.
    with db.tenant_context(acme.pk):
        bad = EventOutbox.objects.create(tenant=acme, event_type="Not A Type", data={})
    record(acme, 1)

    result = services.outbox_drain()

    assert (result.sent, result.rejected) == (3, 1)
    assert events_in_clickhouse(acme.pk) == 3
    (aside,) = outbox(acme)  # back in the outbox as it was, set aside
    assert (aside.pk, aside.status, aside.attempts) == (bad.pk, OutboxStatus.REJECTED, 1)
    assert (aside.event_type, aside.occurred_at) == ("Not A Type", bad.occurred_at)
    assert "event_type_is_dotted_name" in aside.last_error
    assert batches(acme) == []
    # Not retried forever: later drains leave it alone...
    assert services.outbox_drain().rejected == 0
    with db.tenant_context(acme.pk):
        assert EventOutbox.objects.get(pk=bad.pk).attempts == 1
    # ...until staff requeue it after fixing it; then it is delivered, once.
    with db.tenant_context(acme.pk):
        EventOutbox.objects.filter(pk=bad.pk).update(event_type=events.SIGN_IN)
    with db.tenant_context(acme.pk):
        assert services.outbox_requeue_rejected(tenant_id=acme.pk, ids=[bad.pk]) == 1
    assert services.outbox_drain().sent == 1
    assert events_in_clickhouse(acme.pk) == 4


def test_drain_delivers_every_tenant_and_keeps_them_apart(clickhouse_db, acme, globex):
    user = TenantUserFactory(tenant=acme)
    event_record(tenant=acme, event_type=events.SIGN_IN, user=user)
    record(globex, 2)
    assert services.outbox_drain().sent == 3
    assert (events_in_clickhouse(acme.pk), events_in_clickhouse(globex.pk)) == (1, 2)


def test_drain_refuses_to_run_inside_a_transaction(clickhouse_db, acme):
    with pytest.raises(RuntimeError, match="outside a transaction"), transaction.atomic():
        services.outbox_drain_tenant(tenant_id=acme.pk)


def test_purge_deletes_only_old_delivered_rows(clickhouse_db, acme):
    record(acme, 2)
    with db.tenant_context(acme.pk):  # delivered before batches had a table of their own
        EventOutbox.objects.update(status=OutboxStatus.SENT, sent_at=timezone.now())
    record(acme, 1)  # pending: never purged
    assert services.outbox_purge_sent(older_than=timedelta(days=1)) == 0
    assert services.outbox_purge_sent(older_than=timedelta(seconds=0)) == 2
    assert [e.status for e in outbox(acme)] == [OutboxStatus.PENDING]


def test_row_by_row_delivery_cut_short_is_finished_later_without_doubles(
    clickhouse_db, acme, monkeypatch
):
    record(acme, 1)
    with db.tenant_context(acme.pk):
        bad = EventOutbox.objects.create(tenant=acme, event_type="Not A Type", data={})
    record(acme, 2)
    real_event_row = services.event_row
    calls = {"n": 0}

    def flaky_event_row(event):
        # The whole batch goes first (rejected for the bad row, without event_row); then row
        # by row, and the connection drops before the third single row.
        if not isinstance(event, EventOutbox) and event.pk != bad.pk:
            calls["n"] += 1
            if calls["n"] == 2:
                raise ConnectionError("network went away")
        return real_event_row(event)

    monkeypatch.setattr(services, "event_row", flaky_event_row)
    first = services.outbox_drain()
    assert first.unavailable == "network went away"
    assert (first.sent, first.rejected) == (1, 1)
    assert [e.status for e in outbox(acme)] == [OutboxStatus.REJECTED]
    waiting = batches(acme)  # the events cut short wait...
    assert [b.size for b in waiting] == [1, 1]
    assert all(
        b.token == uuid.uuid5(uuid.NAMESPACE_URL, f"metis-event:{b.event_ids[0]}") for b in waiting
    )  # ...each as its own batch, never the old batch's token

    monkeypatch.setattr(services, "event_row", real_event_row)
    second = services.outbox_drain()

    assert (second.sent, second.rejected) == (2, 0)
    assert events_in_clickhouse(acme.pk) == 3
    assert [e.pk for e in outbox(acme)] == [bad.pk] and batches(acme) == []


def test_drain_writes_each_event_as_event_row_makes_it(clickhouse_db, acme):
    # The batch reaches ClickHouse as text PostgreSQL writes (TabSeparated): every awkward
    # value must arrive as event_row would have sent it.
    user = TenantUserFactory(tenant=acme)
    awkward = 'tab\there, line\nbreak, back\\slash \\N, quote " and é€😀'
    with db.tenant_context(acme.pk):
        made = [
            EventOutbox.objects.create(tenant=acme, event_type=events.SIGN_IN, data={"s": awkward}),
            EventOutbox.objects.create(
                tenant=acme, event_type=events.SIGN_IN, data={"n": 1.5, "x": None}, staff_id=7
            ),
            EventOutbox.objects.create(  # the row's own staff_id wins over the column
                tenant=acme, event_type=events.SIGN_IN, data={"staff_id": "kept"}, staff_id=8
            ),
            EventOutbox.objects.create(tenant=acme, event_type=events.SIGN_IN, data=[1, "two"]),
            EventOutbox.objects.create(
                tenant=acme, event_type=events.SIGN_OUT, data={}, user_id=user.pk
            ),
        ]
    assert services.outbox_drain_tenant(tenant_id=acme.pk).sent == 5

    landed = {
        row[0]: row
        for row in clickhouse_rows(
            "SELECT event_id, tenant_id, event_type, event_data, user_id, timestamp FROM events"
        )
    }
    assert len(landed) == 5
    for event in made:
        event_id, tenant_id, event_type, event_data, user_id, timestamp = landed[event.pk]
        expected = services.event_row(event)
        assert (event_id, tenant_id, event_type, user_id) == (
            expected[0],
            expected[1],
            expected[2],
            expected[4],
        )
        assert json.loads(event_data) == json.loads(expected[3])
        millis = event.occurred_at.replace(microsecond=event.occurred_at.microsecond // 1000 * 1000)
        assert timestamp.replace(tzinfo=UTC) == millis
