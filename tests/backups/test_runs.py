"""The job lifecycle: a killed backup is reaped as failed, never left running or called good."""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import psutil
import pytest
from django.conf import settings
from django.utils import timezone

from backups.models import BackupRun, JobStatus, RestoreDrill, WalArchiveCheck
from backups.services import history_archive, physical, runs
from metis.objectstore import store
from metis.objectstore.errors import StorageUnavailable

ROOT = Path(__file__).resolve().parents[2]


def _subprocess_environment(overrides: dict) -> dict:
    def url(alias: str) -> str:
        db = settings.DATABASES[alias]
        password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
        host = quote(db["HOST"], safe="")  # a socket directory travels percent-encoded
        return f"postgres://{db['USER']}{password}@{host}:{db['PORT'] or 5432}/{db['NAME']}"

    environment = {**os.environ, "DATABASE_URL": url("default"), "DATABASE_OWNER_URL": url("owner")}
    for name, value in overrides.items():
        environment[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return environment


def _wait_for(predicate, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_worker_killed_in_the_middle_of_a_backup_leaves_the_run_failed(committed_db, pg_sandbox):
    with pg_sandbox.connect(autocommit=True) as conn:  # enough data for the backup to take a while
        conn.execute(
            "CREATE TABLE filler AS SELECT g, md5(g::text) AS h FROM generate_series(1, 300000) g"
        )
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "backup_run", "full"],
        cwd=ROOT,
        env=_subprocess_environment(pg_sandbox.overrides),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        run = _wait_for(lambda: BackupRun.objects.filter(status=JobStatus.RUNNING).first())
        assert run.pid == worker.pid
        # Kill it once pgBackRest is copying files: a worker lost mid-backup (OOM, node loss).
        _wait_for(
            lambda: any(
                "pgbackrest" in " ".join(child.cmdline())
                for child in psutil.Process(worker.pid).children(recursive=True)
            )
        )
        time.sleep(0.5)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()

    run.refresh_from_db()
    assert run.status == JobStatus.RUNNING  # nobody could mark it: the process died
    assert runs.jobs_reap() == 1
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED and "is gone" in run.error and not run.is_good()
    assert runs.jobs_reap() == 0
    # The repository is not left wedged: the next backup works.
    assert physical.backup_run_physical(kind="full").status == JobStatus.SUCCEEDED


def test_reaper_fails_a_silent_job_on_another_host_and_spares_a_live_one(db):
    now = timezone.now()
    silent = BackupRun.objects.create(
        kind="full", host="elsewhere", pid=1, heartbeat_at=now - datetime.timedelta(minutes=30)
    )
    alive = BackupRun.objects.create(kind="full", host=runs.this_host(), pid=os.getpid())
    drill = RestoreDrill.objects.create(
        host="elsewhere",
        pid=1,
        heartbeat_at=now - datetime.timedelta(hours=2),
        rto_target_seconds=120,
        rpo_target_seconds=60,
    )

    assert runs.jobs_reap(now=now) == 2

    assert BackupRun.objects.get(pk=silent.pk).status == JobStatus.FAILED
    assert BackupRun.objects.get(pk=alive.pk).status == JobStatus.RUNNING
    assert RestoreDrill.objects.get(pk=drill.pk).status == JobStatus.FAILED


def test_job_history_is_kept_thirty_days_but_live_backups_keep_their_rows(db, s3_bucket):
    now = timezone.now()
    old = now - datetime.timedelta(days=31)
    failed = BackupRun.objects.create(kind="full", status="failed", started_at=old)
    kept_backup = BackupRun.objects.create(kind="full", status="succeeded", started_at=old)
    expired = BackupRun.objects.create(
        kind="full", status="succeeded", started_at=old, expired_at=now
    )
    recent = BackupRun.objects.create(kind="full", status="failed", started_at=now)
    WalArchiveCheck.objects.create(checked_at=old)

    deleted = runs.history_cleanup(now=now)

    assert deleted == {"backup_runs": 2, "drills": 0, "archive_checks": 1, "archives_pruned": 0}
    remaining = set(BackupRun.objects.values_list("pk", flat=True))
    assert remaining == {kept_backup.pk, recent.pk}
    assert failed.pk not in remaining and expired.pk not in remaining


def test_deleted_history_is_archived_first_and_the_archive_kept_ninety_days(db, s3_bucket):
    now = timezone.now()
    old = now - datetime.timedelta(days=31)
    failed = BackupRun.objects.create(kind="full", status="failed", started_at=old, error="disk")
    runs.history_cleanup(now=now)
    (key,) = store.backups_store().keys(history_archive.ARCHIVE_PREFIX)
    assert key.startswith(f"{history_archive.ARCHIVE_PREFIX}backup_runs/{now:%Y-%m-%d}-")
    (row,) = history_archive.history_archive_read(key)
    assert (row["id"], row["status"], row["error"]) == (failed.pk, "failed", "disk")

    assert runs.history_cleanup(now=now + datetime.timedelta(days=90))["archives_pruned"] == 0
    later = runs.history_cleanup(now=now + datetime.timedelta(days=91))
    assert later["archives_pruned"] == 1
    assert store.backups_store().keys(history_archive.ARCHIVE_PREFIX) == []


def test_history_stays_when_the_archive_cannot_be_written(db, s3_bucket, settings):
    settings.AWS_S3_ENDPOINT_URL = "http://127.0.0.1:9"  # nothing listens: the store is down
    old = timezone.now() - datetime.timedelta(days=31)
    failed = BackupRun.objects.create(kind="full", status="failed", started_at=old)
    with pytest.raises(StorageUnavailable):
        runs.history_cleanup()
    assert BackupRun.objects.filter(pk=failed.pk).exists()
