"""Beat delivers the outbox on an editable schedule; the tasks are thin and idempotent."""

from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from analytics import tasks
from tenants import db, events
from tests.analytics.conftest import events_in_clickhouse
from tests.factories import event_record


def test_beat_drains_the_outbox_every_ten_seconds_and_purges_daily(db):
    drain = PeriodicTask.objects.get(task="analytics.drain_outbox")
    assert (drain.interval.every, drain.interval.period, drain.enabled) == (10, "seconds", True)
    purge = PeriodicTask.objects.get(task="analytics.purge_sent_outbox")
    assert purge.crontab is not None and purge.enabled


def test_drain_tasks_deliver_and_can_run_again(clickhouse_db, acme):
    event_record(tenant=acme, event_type=events.SIGN_IN)
    assert tasks.drain_tenant_outbox(str(acme.pk))["sent"] == 1
    assert tasks.drain_outbox() == {"sent": 0, "rejected": 0, "unavailable": ""}
    assert events_in_clickhouse(acme.pk) == 1


def test_drain_events_command_delivers_one_tenant_or_refuses_an_unknown_one(
    clickhouse_db, acme, globex
):
    import pytest
    from django.core.management import CommandError, call_command

    event_record(tenant=acme, event_type=events.SIGN_IN)
    event_record(tenant=globex, event_type=events.SIGN_IN)
    call_command("drain_events", "--tenant", "acme")
    assert (events_in_clickhouse(acme.pk), events_in_clickhouse(globex.pk)) == (1, 0)
    with pytest.raises(CommandError, match="no tenant"):
        call_command("drain_events", "--tenant", "nobody")


def test_seed_events_counts_history_claimed_but_not_delivered_as_seeded(clickhouse_db, acme):
    from analytics import services
    from analytics.management.commands.seed_events import Command

    with db.tenant_context(acme.pk):
        services.outbox_record_history(
            tenant_id=acme.pk,
            history=[(timezone.now(), events.SIGN_IN, {"seed": True}, None)],
        )
    assert Command()._already_seeded(acme)  # waiting in the outbox
    assert services._claim_batch(acme.pk, 100).size == 1
    assert Command()._already_seeded(acme)  # in a batch on its way
