"""The outbox drain: every committed event reaches ClickHouse once; none is lost."""

import json
import socket
import uuid
from datetime import UTC, timedelta

from django.db import transaction

from analytics import services
from metis.events import recorder
from metis.events.models import EventOutbox, OutboxStatus
from tenants import db, events
from tests.analytics.conftest import clickhouse_rows, events_in_clickhouse
from tests.factories import TenantUserFactory, event_record


def outbox(tenant) -> list[EventOutbox]:
    with db.tenant_context(tenant.pk):
        return list(EventOutbox.objects.for_tenant(tenant).order_by("occurred_at"))


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
    assert services.outbox_drain_tenant(tenant_id=acme.pk).sent == 5
    # Simulate a crash after ClickHouse took the batch but before PostgreSQL marked it: the rows
    # are pending again, still claimed by the same batch token.
    with db.tenant_context(acme.pk):
        EventOutbox.objects.for_tenant(acme).update(
            status=OutboxStatus.PENDING, claimed_at=None, sent_at=None
        )
    tokens = {e.batch_token for e in outbox(acme)}
    assert len(tokens) == 1 and None not in tokens

    again = services.outbox_drain_tenant(tenant_id=acme.pk)

    assert again.sent == 5  # re-sent and marked...
    assert events_in_clickhouse(acme.pk) == 5  # ...but counted once, by a plain count()
    assert {e.status for e in outbox(acme)} == {OutboxStatus.SENT}


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
    waiting = outbox(acme)
    assert [e.status for e in waiting] == [OutboxStatus.PENDING] * 4
    assert {e.attempts for e in waiting} == {1}
    assert all("Unavailable" in e.last_error for e in waiting)
    assert services.outbox_drain().unavailable  # still down: still waiting, nothing lost
    record(acme, 1)  # new events keep arriving meanwhile

    settings.CLICKHOUSE_URL = ""  # back up
    back = services.outbox_drain()

    assert back.sent == 5 and not back.unavailable
    assert events_in_clickhouse(acme.pk) == 5
    assert {e.status for e in outbox(acme)} == {OutboxStatus.SENT}


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
    by_id = {e.pk: e for e in outbox(acme)}
    assert by_id[bad.pk].status == OutboxStatus.REJECTED
    assert "event_type_is_dotted_name" in by_id[bad.pk].last_error
    assert by_id[bad.pk].attempts == 1
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
    import pytest

    with pytest.raises(RuntimeError, match="outside a transaction"), transaction.atomic():
        services.outbox_drain_tenant(tenant_id=acme.pk)


def test_purge_deletes_only_old_delivered_rows(clickhouse_db, acme):
    record(acme, 2)
    services.outbox_drain()
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
    statuses = [e.status for e in outbox(acme)]
    assert statuses.count(OutboxStatus.PENDING) == 2  # the rows cut short wait...
    with db.tenant_context(acme.pk):
        waiting = EventOutbox.objects.filter(status=OutboxStatus.PENDING)
        assert all(
            e.batch_token == uuid.uuid5(uuid.NAMESPACE_URL, f"metis-event:{e.pk}") for e in waiting
        )  # ...each as its own batch, never the old batch's token

    monkeypatch.setattr(services, "event_row", real_event_row)
    second = services.outbox_drain()

    assert (second.sent, second.rejected) == (2, 0)
    assert events_in_clickhouse(acme.pk) == 3
    assert sorted(e.status for e in outbox(acme)) == ["rejected", "sent", "sent", "sent"]


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
