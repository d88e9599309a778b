"""Each rule driven by a real condition: one mail and one webhook post when it opens, none while
it stays, one of each when it clears."""

from __future__ import annotations

import contextlib
import datetime
import os
import threading
import time
import uuid

import psycopg
import pytest
from botocore.exceptions import ClientError
from django.utils import timezone

from backups.models import BackupRun, RestoreDrill, WalArchiveCheck
from backups.services import runs
from metis.events.models import EventOutbox
from metis.objectstore import store
from monitoring import figures
from monitoring.models import Alert, AlertState
from tenants import db
from tests.monitoring.alerts.conftest import evaluate
from tests.monitoring.test_collectors import runtime_role_session

pytestmark = pytest.mark.committed


def the_alert(rule: str, subject: str = "") -> Alert:
    (alert,) = Alert.objects.filter(rule=rule, subject=subject)
    return alert


def _sleep(session: psycopg.Connection, seconds: int) -> None:
    with contextlib.suppress(psycopg.errors.QueryCanceled):
        session.execute("SELECT pg_sleep(%s)", [seconds])


def test_a_query_running_past_the_real_five_seconds_opens_one_critical_alert(
    tenant_db, alerting, settings
):
    assert settings.ALERT_DB_SLOW_QUERY_SECONDS == 5  # the spec's threshold, not lowered
    with (
        runtime_role_session() as sleeper_session,
        runtime_role_session() as lock_holder,
        runtime_role_session() as control,
    ):
        # A job's lock holder: idle in transaction for as long as the job runs. Not a query.
        lock_holder.execute("BEGIN")
        lock_holder.execute("SELECT pg_advisory_xact_lock(515151)")
        started = time.monotonic()
        sleeper = threading.Thread(target=_sleep, args=(sleeper_session, 60))
        sleeper.start()
        try:
            time.sleep(1)
            assert evaluate("db_slow_query").opened == []  # running 1 s: fine
            while time.monotonic() - started < 5.5:
                time.sleep(0.2)
            (opened,) = evaluate("db_slow_query").opened
            assert opened.severity == "critical"
            assert f"pid {sleeper_session.info.backend_pid}" in opened.message
            assert str(lock_holder.info.backend_pid) not in opened.message
            alerting.assert_once("[Metis CRITICAL] db_slow_query", total=1)
            evaluate("db_slow_query")  # still running: the same alert, nobody told again
            assert Alert.objects.count() == 1 and alerting.counts() == (1, 1)
        finally:
            control.execute("SELECT pg_cancel_backend(%s)", [sleeper_session.info.backend_pid])
            sleeper.join()
        # The lock holder still sits idle in its transaction, past 5 s: clear all the same.
        (resolved,) = evaluate("db_slow_query").resolved
        lock_holder.execute("ROLLBACK")
    assert resolved.state == AlertState.RESOLVED and resolved.resolved_at
    alerting.assert_once("[Metis RESOLVED] db_slow_query", total=2)


def test_database_disk_past_85_percent_of_the_configured_capacity(tenant_db, alerting, settings):
    size = figures.database_size_bytes()
    settings.ALERT_DB_DISK_CAPACITY_BYTES = int(size / 0.9)  # 90 % full
    (opened,) = evaluate("db_disk").opened
    assert "90 %" in opened.message and "threshold 85 %" in opened.message
    alerting.assert_once("[Metis WARNING] db_disk", total=1)
    settings.ALERT_DB_DISK_CAPACITY_BYTES = size * 2
    assert len(evaluate("db_disk").resolved) == 1
    alerting.assert_once("[Metis RESOLVED] db_disk", total=2)


def test_database_disk_by_the_volume_of_the_data_directory(tenant_db, alerting, settings, tmp_path):
    settings.ALERT_DB_DISK_CAPACITY_BYTES = 0
    settings.ALERT_DB_DISK_PATH = str(tmp_path)
    volume = os.statvfs(tmp_path)
    used = volume.f_blocks - volume.f_bfree
    percent = 100 * used / (used + volume.f_bavail)
    settings.ALERT_DB_DISK_PERCENT = percent - 0.5
    (opened,) = evaluate("db_disk").opened
    assert f"volume of {tmp_path}" in opened.message
    settings.ALERT_DB_DISK_PERCENT = min(percent + 5, 100)
    assert len(evaluate("db_disk").resolved) == 1
    # A data directory on another machine: nothing to judge, nothing opened or resolved.
    settings.ALERT_DB_DISK_PATH = f"/nonexistent/{uuid.uuid4()}"
    settings.ALERT_DB_DISK_PERCENT = 0
    assert evaluate("db_disk").opened == []


def test_a_failed_backup_opens_an_alert_per_kind_until_a_later_one_succeeds(tenant_db, alerting):
    full = runs.job_start(BackupRun, kind="full")
    runs.job_fail(full, error="pgbackrest: [056]: unable to find primary cluster")
    runs.job_succeed(runs.job_start(BackupRun, kind="logical"))
    (opened,) = evaluate("backup_failed").opened
    assert opened.subject == "full" and "unable to find primary cluster" in opened.message
    alerting.assert_once("[Metis CRITICAL] backup_failed:full", total=1)
    runs.job_start(BackupRun, kind="full")  # running: not yet evidence either way
    assert evaluate("backup_failed").resolved == []
    runs.job_succeed(BackupRun.objects.running().get())
    assert [a.subject for a in evaluate("backup_failed").resolved] == ["full"]
    alerting.assert_once("[Metis RESOLVED] backup_failed:full", total=2)


def test_no_good_backup_within_its_schedule(tenant_db, alerting, settings):
    now = timezone.now()
    BackupRun.objects.create(
        kind="full",
        status="succeeded",
        started_at=now - datetime.timedelta(hours=40),
        verified=True,
        restore_tested=True,
        label="20261201-013000F",
    )
    (opened,) = evaluate("backup_stale").opened
    assert "40.0 h old (threshold 36 h)" in opened.message
    alerting.assert_once("[Metis CRITICAL] backup_stale", total=1)
    BackupRun.objects.create(
        kind="incr", status="succeeded", started_at=now, verified=True, restore_tested=True
    )
    assert len(evaluate("backup_stale").resolved) == 1
    alerting.assert_once("[Metis RESOLVED] backup_stale", total=2)


def test_a_stale_or_failing_wal_archive(tenant_db, alerting):
    now = timezone.now()
    WalArchiveCheck.objects.create(
        checked_at=now - datetime.timedelta(hours=3),
        last_archived_at=now - datetime.timedelta(hours=3, minutes=20),
        age_seconds=1200,
        in_repository=True,
        ok=True,
    )
    (opened,) = evaluate("wal_archive").opened
    assert "last checked 180 min ago" in opened.message
    assert "for 1200 s (threshold 900 s)" in opened.message
    alerting.assert_once("[Metis CRITICAL] wal_archive", total=1)
    WalArchiveCheck.objects.create(
        checked_at=now,
        last_archived_at=now - datetime.timedelta(hours=4),
        age_seconds=14400,
        in_repository=False,
        ok=False,
        detail="archive_command is failing: last failure 000000010000000000000042",
    )
    evaluate("wal_archive")  # failing now as well: still the one alert, updated
    assert "000000010000000000000042" in the_alert("wal_archive").message
    assert alerting.counts() == (1, 1)
    later = timezone.now()
    WalArchiveCheck.objects.create(
        checked_at=later, last_archived_at=later, age_seconds=2, in_repository=True, ok=True
    )
    assert len(evaluate("wal_archive").resolved) == 1
    alerting.assert_once("[Metis RESOLVED] wal_archive", total=2)


def test_a_failed_restore_drill_until_one_passes(tenant_db, alerting):
    drill = runs.job_start(RestoreDrill, rto_target_seconds=120, rpo_target_seconds=60)
    runs.job_fail(drill, error="row counts differ for documents_document")
    (opened,) = evaluate("restore_drill").opened
    assert "row counts differ" in opened.message
    alerting.assert_once("[Metis WARNING] restore_drill", total=1)
    runs.job_succeed(
        runs.job_start(RestoreDrill, rto_target_seconds=120, rpo_target_seconds=60),
        checks_passed=True,
    )
    assert len(evaluate("restore_drill").resolved) == 1
    alerting.assert_once("[Metis RESOLVED] restore_drill", total=2)


def _pending_events(tenant, count: int, *, age: datetime.timedelta) -> list[int]:
    with db.tenant_context(tenant.pk):
        return [
            EventOutbox.objects.create(
                tenant=tenant, event_type="auth.sign_in", occurred_at=timezone.now() - age
            ).pk
            for _ in range(count)
        ]


def _delivered(tenant, ids: list[int]) -> None:
    with db.tenant_context(tenant.pk):
        EventOutbox.objects.filter(pk__in=ids).update(status="sent")


def test_an_outbox_backlog_and_an_old_undelivered_event(tenant, alerting, settings):
    settings.ALERT_OUTBOX_PENDING_MAX = 2
    ids = _pending_events(tenant, 3, age=datetime.timedelta(minutes=20))
    (backlog,) = evaluate("outbox_backlog").opened
    assert "3 events wait" in backlog.message and "(threshold 2)" in backlog.message
    (delay,) = evaluate("outbox_delay").opened
    assert "threshold 600 s" in delay.message
    assert alerting.counts() == (2, 2)
    _delivered(tenant, ids)
    assert len(evaluate("outbox_backlog").resolved) == 1
    assert len(evaluate("outbox_delay").resolved) == 1
    alerting.assert_once("[Metis RESOLVED] outbox_backlog", total=4)


def test_s3_answering_errors_opens_an_alert_for_the_operation(s3_bucket, alerting, tenant_db):
    assert evaluate("s3_errors").opened == []  # the first reading sets the baseline
    missing = f"no-such-bucket-{uuid.uuid4().hex[:8]}"
    client = store.documents_store().client
    for _ in range(6):
        with pytest.raises(ClientError):
            client.list_objects_v2(Bucket=missing)
        # Existence checks of missing keys are answers, not faults: never counted.
        assert store.documents_store().read_bytes(f"missing/{uuid.uuid4()}") is None
    opened = evaluate("s3_errors").opened
    assert [a.subject for a in opened] == ["ListObjectsV2"]
    assert "6 failed calls" in opened[0].message
    alerting.assert_once("[Metis WARNING] s3_errors:ListObjectsV2", total=1)
    assert [a.subject for a in evaluate("s3_errors").resolved] == ["ListObjectsV2"]
    alerting.assert_once("[Metis RESOLVED] s3_errors:ListObjectsV2", total=2)
