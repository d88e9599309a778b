"""Hourly health of continuous archiving: is WAL reaching the repository, and how fresh is it?"""

from __future__ import annotations

import time

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from backups import cluster, pgbackrest
from backups.models import WalArchiveCheck

STATS_WAIT_SECONDS = 10


def archive_check_record(*, ctx: pgbackrest.Context | None = None) -> WalArchiveCheck:
    """Check archiving end to end and record the result.

    `pgbackrest check` switches to a new WAL segment and waits for it to arrive in the
    repository, so a pass proves the whole path (archive_command, S3, encryption) works now.
    pg_stat_archiver says how old the newest archived segment is and whether pushes fail.
    """
    ctx = ctx or pgbackrest.Context.current()
    detail = []
    try:
        wait = settings.BACKUP_ARCHIVE_TIMEOUT_SECONDS * 2
        pgbackrest.run(ctx, "check", f"--archive-timeout={wait}", timeout=wait + 60)
        in_repository = True
    except pgbackrest.PgBackRestError as exc:
        in_repository = False
        detail.append(str(exc))
    last_wal, last_at, failed_count, last_failed_wal, last_failed_at = ("", None, 0, "", None)
    try:
        with cluster.connect(ctx.target, dbname="postgres", autocommit=True) as conn:
            # The archiver counts a segment once archive_command has exited, a moment after the
            # segment reached the repository (which is all `check` waits for): on a server
            # that never archived before, give that moment.
            deadline = time.monotonic() + STATS_WAIT_SECONDS
            while True:
                last_wal, last_at, failed_count, last_failed_wal, last_failed_at = conn.execute(
                    "SELECT coalesce(last_archived_wal, ''), last_archived_time, failed_count, "
                    "coalesce(last_failed_wal, ''), last_failed_time FROM pg_stat_archiver"
                ).fetchone()
                if last_at is not None or not in_repository or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
    except Exception as exc:
        detail.append(f"cannot read pg_stat_archiver: {exc}")
    now = timezone.now()
    age = (now - last_at).total_seconds() if last_at else None
    failing_now = last_failed_at is not None and (last_at is None or last_failed_at > last_at)
    if failing_now:
        detail.append(f"archive_command is failing: last failure {last_failed_wal}")
    ok = in_repository and last_at is not None and not failing_now
    with transaction.atomic():
        return WalArchiveCheck.objects.create(
            checked_at=now,
            last_archived_wal=last_wal,
            last_archived_at=last_at,
            age_seconds=age,
            failed_count=failed_count,
            last_failed_wal=last_failed_wal,
            in_repository=in_repository,
            ok=ok,
            detail="\n".join(detail)[-5000:],
        )
