from __future__ import annotations

import contextlib
import datetime
import threading
import time
import uuid

import psycopg
import pytest
from celery import current_app
from django.db import connection
from django.utils import timezone

import monitoring.figures
from backups.models import BackupRun, RestoreDrill, WalArchiveCheck
from metis.events.models import EventOutbox, EventOutboxBatch
from monitoring import collectors
from tenants import db
from tests.documents.conftest import pdf_bytes, upload
from tests.monitoring.conftest import figure, figures

pytestmark = pytest.mark.committed


def runtime_role_session() -> psycopg.Connection:
    params = connection.settings_dict
    return psycopg.connect(
        dbname=params["NAME"],
        user=params["USER"],
        password=params["PASSWORD"] or None,
        host=params["HOST"],
        port=params["PORT"] or None,
        autocommit=True,
    )


def test_database_figures_are_sane(tenant_db):
    used = sum(figures("metis_db_connections").values())
    assert 1 <= used <= figure("metis_db_connections_max")
    assert figure("metis_db_size_bytes") > 1_000_000
    assert figure("metis_collector_up", section="database") == 1


def test_replication_lag_absent_without_a_replica(tenant_db):
    assert figure("metis_db_replicas") == 0
    assert figures("metis_db_replication_lag_seconds") == {}


def test_a_query_running_past_five_seconds_is_a_slow_query(tenant_db):
    # A sleep long enough to outlast a slow scrape on a loaded machine, cancelled once seen.
    with runtime_role_session() as session, runtime_role_session() as control:
        pid = session.info.backend_pid
        sleeper = threading.Thread(target=_sleep, args=(session, 60))
        started = time.monotonic()
        sleeper.start()
        try:
            time.sleep(1)
            assert figure("metis_db_longest_query_seconds") >= 0.9
            while time.monotonic() - started < 5.2:
                time.sleep(0.2)
            assert figure("metis_db_slow_queries") >= 1
            assert figure("metis_db_longest_query_seconds") >= 5
        finally:
            control.execute("SELECT pg_cancel_backend(%s)", [pid])
            sleeper.join()


def _sleep(session: psycopg.Connection, seconds: int) -> None:
    with contextlib.suppress(psycopg.errors.QueryCanceled):
        session.execute("SELECT pg_sleep(%s)", [seconds])


def test_a_held_lock_shows_a_lock_wait(tenant_db):
    with runtime_role_session() as holder, runtime_role_session() as waiter:
        holder.execute("BEGIN")
        holder.execute("SELECT pg_advisory_lock(424242)")
        blocked = threading.Thread(target=waiter.execute, args=("SELECT pg_advisory_lock(424242)",))
        blocked.start()
        try:
            deadline = time.monotonic() + 5
            while figure("metis_db_lock_waits") < 1 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert figure("metis_db_lock_waits") >= 1
        finally:
            holder.execute("ROLLBACK")
            holder.execute("SELECT pg_advisory_unlock_all()")
            blocked.join()
            waiter.execute("SELECT pg_advisory_unlock_all()")


def test_uploaded_documents_show_bytes_objects_and_cost_per_tenant_and_tier(
    s3_bucket, tenant, other_tenant, settings
):
    settings.STORAGE_PRICES_USD_PER_GB_MONTH = {"STANDARD": 2.0, "STANDARD_IA": 1.0, "GLACIER": 0.5}
    first = upload(tenant, pdf_bytes(size=1009))
    upload(tenant, pdf_bytes(size=3009))
    upload(other_tenant, pdf_bytes(size=1509))
    with db.tenant_context(tenant.pk):
        type(first).objects.filter(pk=first.pk).update(storage_class="GLACIER")

    assert figure("metis_s3_stored_bytes", tenant="acme", tier="STANDARD") == 3009
    assert figure("metis_s3_stored_objects", tenant="acme", tier="STANDARD") == 1
    assert figure("metis_s3_stored_bytes", tenant="acme", tier="GLACIER") == 1009
    assert figure("metis_s3_stored_bytes", tenant="globex", tier="STANDARD") == 1509
    assert figure("metis_s3_stored_objects", tenant="globex", tier="GLACIER") is None
    cost = figure("metis_s3_estimated_monthly_cost_usd", tenant="acme")
    assert cost == pytest.approx((3009 * 2.0 + 1009 * 0.5) / 2**30)
    assert figure("metis_s3_estimated_monthly_cost_usd", tenant="globex") == pytest.approx(
        1509 * 2.0 / 2**30
    )


def test_storage_figures_read_inside_a_tenant_context_still_name_each_tenant_apart(
    s3_bucket, tenant, other_tenant
):
    upload(tenant, pdf_bytes(size=1109))
    upload(other_tenant, pdf_bytes(size=1709))
    with db.tenant_context(tenant.pk):
        rows = collectors.storage_by_tenant()
        # The tenant's own context is untouched by the all-tenants read inside.
        assert db.current_tenant_id() == tenant.pk
    assert sorted(rows) == [("acme", "STANDARD", 1109, 1), ("globex", "STANDARD", 1709, 1)]


def test_outbox_backlog_and_oldest_age(tenant, other_tenant):
    now = timezone.now()
    with db.tenant_context(tenant.pk):
        EventOutbox.objects.create(
            tenant=tenant, event_type="auth.sign_in", occurred_at=now - datetime.timedelta(60)
        )
    with db.tenant_context(other_tenant.pk):
        for minutes in (10, 1):
            EventOutbox.objects.create(
                tenant=other_tenant,
                event_type="auth.sign_in",
                occurred_at=now - datetime.timedelta(minutes=minutes),
            )
        EventOutbox.objects.create(
            tenant=other_tenant,
            event_type="auth.sign_in",
            occurred_at=now - datetime.timedelta(days=400),
            status="sent",
        )
    assert figure("metis_outbox_pending_events") == 3
    assert 60 * 86400 <= figure("metis_outbox_oldest_pending_age_seconds") < 60 * 86400 + 60
    # Events the drain claimed and has not delivered yet still wait: they count, and their age.
    old = now - datetime.timedelta(days=90)
    with db.tenant_context(tenant.pk):
        EventOutboxBatch.objects.create(
            token=uuid.uuid4(),
            tenant=tenant,
            size=2,
            oldest_at=old,
            event_ids=[uuid.uuid4(), uuid.uuid4()],
            event_types=["auth.sign_in"] * 2,
            event_data=[{}, {}],
            user_ids=[None, None],
            staff_ids=[None, None],
            occurred_ats=[old, now],
        )
    assert figure("metis_outbox_pending_events") == 5
    assert 90 * 86400 <= figure("metis_outbox_oldest_pending_age_seconds") < 90 * 86400 + 60


def test_backup_ages_and_the_last_drill(tenant_db):
    assert figure("metis_backup_last_good_age_seconds") is None
    now = timezone.now()
    BackupRun.objects.create(
        kind="full",
        status="succeeded",
        started_at=now - datetime.timedelta(hours=3),
        verified=True,
        restore_tested=True,
    )
    BackupRun.objects.create(kind="full", status="failed", started_at=now)
    WalArchiveCheck.objects.create(
        last_archived_at=now - datetime.timedelta(seconds=90), ok=True, in_repository=True
    )
    RestoreDrill.objects.create(
        status="succeeded",
        rto_seconds=42.5,
        rpo_seconds=7.0,
        rto_target_seconds=120,
        rpo_target_seconds=60,
    )
    assert 3 * 3600 <= figure("metis_backup_last_good_age_seconds") < 3 * 3600 + 60
    assert 90 <= figure("metis_backup_wal_archive_age_seconds") < 150
    assert figure("metis_backup_drill_rto_seconds") == 42.5
    assert figure("metis_backup_drill_rpo_seconds") == 7.0


@pytest.mark.redis
def test_celery_queue_depth_counts_waiting_messages(tenant_db):
    queue = f"metrics-test-{time.monotonic_ns()}"
    routes = current_app.conf.task_routes
    current_app.conf.task_routes = {**routes, "tests.monitoring.never_run": {"queue": queue}}
    try:
        assert {queue, "celery", "backups"} <= set(monitoring.figures.queue_names())
        assert figure("metis_celery_queue_length", queue=queue) == 0
        for _ in range(3):
            current_app.send_task("tests.monitoring.never_run", queue=queue)
        assert figure("metis_celery_queue_length", queue=queue) == 3
        assert figure("metis_celery_queue_length", queue="backups") is not None
    finally:
        current_app.conf.task_routes = routes
        with current_app.connection_for_write() as conn:
            conn.default_channel.queue_purge(queue)
