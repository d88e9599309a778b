from __future__ import annotations

import datetime
import time
import uuid

import psycopg
import pytest
from celery import current_app
from django.utils import timezone
from kombu import Connection

from monitoring.alerts import queries, rules, services
from monitoring.models import Alert, AlertNotification, AlertState
from tests.monitoring.alerts.conftest import evaluate
from tests.monitoring.alerts.test_rules import _delivered, _pending_events
from tests.support import scratch
from tests.support import services as private_services

pytestmark = pytest.mark.committed


def test_a_condition_that_comes_and_goes_keeps_one_alert_and_resolves_after_a_clear_spell(
    tenant, alerting, settings
):
    settings.ALERT_RESOLVE_AFTER_SECONDS = 180
    settings.ALERT_OUTBOX_PENDING_MAX = 1
    t0 = timezone.now()
    minute = datetime.timedelta(minutes=1)
    ids = _pending_events(tenant, 2, age=datetime.timedelta(0))
    assert len(evaluate("outbox_backlog", now=t0).opened) == 1
    _delivered(tenant, ids)
    assert evaluate("outbox_backlog", now=t0 + minute).resolved == []  # clear for 0 s
    ids = _pending_events(tenant, 2, age=datetime.timedelta(0))
    assert evaluate("outbox_backlog", now=t0 + 2 * minute).opened == []  # back: the same alert
    _delivered(tenant, ids)
    for later in (3, 4, 5):
        assert evaluate("outbox_backlog", now=t0 + later * minute).resolved == []
    (resolved,) = evaluate("outbox_backlog", now=t0 + 6 * minute).resolved  # clear for 180 s
    assert resolved.clear_since == t0 + 3 * minute and resolved.resolved_at == t0 + 6 * minute
    assert Alert.objects.count() == 1
    alerting.assert_once("[Metis WARNING] outbox_backlog", total=2)
    alerting.assert_once("[Metis RESOLVED] outbox_backlog", total=2)


def test_a_second_evaluation_at_the_same_moment_changes_nothing(tenant, alerting, settings):
    settings.ALERT_OUTBOX_PENDING_MAX = 0
    _pending_events(tenant, 1, age=datetime.timedelta(0))
    now = timezone.now()
    evaluate("outbox_backlog", now=now)
    evaluate("outbox_backlog", now=now)
    assert Alert.objects.count() == 1 and AlertNotification.objects.count() == 2
    assert alerting.counts() == (1, 1)


def test_an_evaluation_steps_aside_while_another_holds_the_lock(tenant_db, settings):
    from django.db import connection

    params = connection.settings_dict
    with psycopg.connect(
        dbname=params["NAME"], user=params["USER"], host=params["HOST"], port=params["PORT"]
    ) as other:
        other.execute("SELECT pg_advisory_xact_lock(hashtext('monitoring.alerts'))")
        assert services.alerts_evaluate(only=["backup_stale"]).skipped
        other.rollback()
    assert not services.alerts_evaluate(only=["backup_stale"]).skipped


def test_a_rule_that_cannot_read_its_figures_is_skipped_and_keeps_its_alerts(tenant_db, settings):
    Alert.objects.create(rule="celery_queue", subject="celery", severity="warning", message="x")
    current_app.conf.broker_url, previous = "redis://127.0.0.1:1/0", current_app.conf.broker_url
    try:
        evaluation = services.alerts_evaluate(only=["celery_queue"])
    finally:
        current_app.conf.broker_url = previous
    assert evaluation.failed_rules == ["celery_queue"]
    assert Alert.objects.get().state == AlertState.OPEN


def test_acknowledge_from_the_admin_records_who_and_when_and_still_resolves(
    tenant, alerting, settings, staff_client, staff_user
):
    settings.ALERT_OUTBOX_PENDING_MAX = 0
    ids = _pending_events(tenant, 1, age=datetime.timedelta(0))
    (alert,) = evaluate("outbox_backlog").opened
    response = staff_client.post(
        "/admin/monitoring/alert/", {"action": "acknowledge", "_selected_action": [alert.pk]}
    )
    assert response.status_code == 302
    alert.refresh_from_db()
    assert alert.state == AlertState.ACKNOWLEDGED and alert.acknowledged_by == staff_user
    assert alert.acknowledged_at is not None
    assert evaluate("outbox_backlog").opened == []  # acknowledged is still active
    assert [a.pk for a in queries.open_alerts()] == [alert.pk]
    page = staff_client.get("/admin/monitoring/alert/?state__exact=acknowledged")
    assert b"outbox_backlog" in page.content and b"opened email: sent" in page.content
    _delivered(tenant, ids)
    assert [a.pk for a in evaluate("outbox_backlog").resolved] == [alert.pk]
    assert queries.open_alerts() == []
    alerting.assert_once("[Metis RESOLVED] outbox_backlog", total=2)


def test_open_alerts_lists_critical_first_then_the_oldest(tenant_db):
    now = timezone.now()
    old_warning = Alert.objects.create(
        rule="celery_queue", severity="warning", message="w", first_seen_at=now
    )
    critical = Alert.objects.create(rule="wal_archive", severity="critical", message="c")
    Alert.objects.create(rule="db_disk", severity="warning", message="r", state="resolved")
    newer_warning = Alert.objects.create(
        rule="outbox_delay",
        severity="warning",
        message="w2",
        first_seen_at=now + datetime.timedelta(1),
    )
    assert queries.open_alerts() == [critical, old_warning, newer_warning]


def test_unknown_rule_names_are_refused():
    with pytest.raises(ValueError, match="no_such_rule"):
        rules.rules_enabled(["no_such_rule"])


def test_disabled_rules_are_not_evaluated(settings):
    settings.ALERT_RULES_DISABLED = ["backup_stale", "restore_drill"]
    names = {rule.name for rule in rules.rules_enabled()}
    assert "backup_stale" not in names and "db_slow_query" in names


@pytest.mark.redis
def test_a_celery_queue_past_its_threshold(tenant_db, alerting, settings):
    settings.ALERT_CELERY_QUEUE_MAX = 3
    redis_server = private_services.PrivateRedis().start()  # this test's own broker
    previous = current_app.conf.broker_url
    current_app.conf.broker_url = redis_server.url
    queue = f"alerts-test-{uuid.uuid4().hex[:8]}"
    routes = current_app.conf.task_routes
    current_app.conf.task_routes = {**routes, "tests.alerts.never_run": {"queue": queue}}
    try:
        with Connection(redis_server.url) as connection:
            waiting = connection.SimpleQueue(queue)
            for number in range(4):
                waiting.put({"number": number})
            waiting.close()
        (opened,) = evaluate("celery_queue").opened
        assert opened.subject == queue and "4 messages waiting" in opened.message
        alerting.assert_once(f"[Metis WARNING] celery_queue:{queue}", total=1)
        with current_app.connection_for_write() as conn:
            conn.default_channel.queue_purge(queue)
        assert [a.subject for a in evaluate("celery_queue").resolved] == [queue]
        alerting.assert_once(f"[Metis RESOLVED] celery_queue:{queue}", total=2)
    finally:
        current_app.conf.task_routes = routes
        current_app.conf.broker_url = previous
        redis_server.stop()


@pytest.fixture
def small_postgres(django_db_blocker):
    """A private server with max_connections = 20 and the application migrated into it."""
    postgres = private_services.PrivatePostgres().create(max_connections="20")
    with django_db_blocker.unblock(), private_services.database_settings_kept():
        postgres.point_settings_at("metis_alerts")
        scratch.scratch_database_create("metis_alerts")
        yield postgres
        scratch.close_all_connections()
    postgres.destroy()


def test_connections_past_80_percent_of_max_connections(small_postgres, alerting):
    from monitoring import figures

    extra: list[psycopg.Connection] = []
    try:
        while figures.database_connections().in_use < 17:  # 85 % of 20
            extra.append(psycopg.connect(small_postgres.url("postgres", "postgres")))
        (opened,) = evaluate("db_connections").opened
        assert "of 20; threshold 80 %" in opened.message
        alerting.assert_once("[Metis WARNING] db_connections", total=1)
        evaluate("db_connections")
        assert alerting.counts() == (1, 1)
    finally:
        for conn in extra:
            conn.close()
    deadline = time.monotonic() + 10
    while figures.database_connections().in_use > 16 and time.monotonic() < deadline:
        time.sleep(0.1)  # the server notices the closed sessions a moment later
    assert len(evaluate("db_connections").resolved) == 1
    alerting.assert_once("[Metis RESOLVED] db_connections", total=2)
