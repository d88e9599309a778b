"""Hourly archiving health: a working archive passes, a failing archive_command is caught."""

from __future__ import annotations

from backups import tasks
from backups.models import WalArchiveCheck


def test_archive_check_passes_when_wal_reaches_the_repository(db, pg_sandbox):
    check = WalArchiveCheck.objects.get(pk=tasks.archive_check())

    assert check.ok and check.in_repository, check.detail
    assert check.last_archived_wal and check.age_seconds is not None and check.age_seconds < 60


def test_archive_check_fails_when_archive_command_fails(db, pg_sandbox, settings):
    settings.BACKUP_ARCHIVE_TIMEOUT_SECONDS = 3  # pgBackRest waits 2x this for the segment
    with pg_sandbox.connect(dbname="postgres", autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET archive_command = '/bin/false'")
        conn.execute("SELECT pg_reload_conf()")
        conn.execute("SELECT pg_switch_wal()")

    check = WalArchiveCheck.objects.get(pk=tasks.archive_check())

    assert not check.ok and not check.in_repository
    assert "archive" in check.detail
