"""Celery tasks for backups: thin wrappers over the services, scheduled by beat (admin-editable).

None of them is tenant work: they run with no tenant context. Every run is catalogued, and
a task killed midway leaves a running row that `reap_dead_jobs` marks failed.
"""

from __future__ import annotations

from celery import shared_task
from celery.signals import worker_ready

from backups.models import BackupKind


@shared_task(name="backups.backup_full")
def backup_full(*, verify: bool = True) -> int:
    """Take a full backup, then verify and restore-test it. Not idempotent: each call backs up."""
    from backups.services import physical

    run = physical.backup_run_physical(kind=BackupKind.FULL)
    if verify:
        physical.backup_verify(run=run)
    return run.pk


@shared_task(name="backups.verify_backup")
def verify_backup(run_id: int) -> bool:
    """Verify (and restore-test) one catalogued backup; return whether it is good. Idempotent."""
    from backups.models import BackupRun
    from backups.services import object_backups, physical

    run = BackupRun.objects.get(pk=run_id)
    if run.kind in object_backups.OBJECT_KINDS:
        object_backups.object_backup_verify(run=run)
    else:
        physical.backup_verify(run=run)
    return run.is_good()


@shared_task(name="backups.backup_incremental")
def backup_incremental() -> int:
    """Take an incremental backup on top of the latest one. Not idempotent."""
    from backups.services import physical

    return physical.backup_run_physical(kind=BackupKind.INCR).pk


@shared_task(name="backups.backup_logical")
def backup_logical() -> int:
    """Dump the database logically (pg_dump -Fc, encrypted) and verify it. Not idempotent."""
    from backups.services import logical, object_backups

    run = logical.backup_run_logical()
    object_backups.object_backup_verify(run=run)
    return run.pk


@shared_task(name="backups.backup_analytics")
def backup_analytics() -> int:
    """Export every ClickHouse events partition to encrypted Parquet. Not idempotent."""
    from analytics import clickhouse
    from backups.services import analytics, object_backups

    with clickhouse.session() as client:
        run = analytics.backup_run_analytics(client=client)
    object_backups.object_backup_verify(run=run)
    return run.pk


@shared_task(name="backups.archive_copy")
def archive_copy() -> int:
    """Copy the newest good full backup to long-term (Glacier) storage. Not idempotent."""
    from backups.services import archive_copy as service

    return service.backup_archive_copy().pk


@shared_task(name="backups.restore_drill")
def restore_drill() -> int:
    """Run a restore drill (monthly). Not idempotent: each call is a new drill."""
    from backups.services import drill

    return drill.drill_run().pk


@shared_task(name="backups.archive_check")
def archive_check() -> int:
    """Check WAL archiving end to end and record it (hourly). Idempotent."""
    from backups.services import archiving

    return archiving.archive_check_record().pk


@shared_task(name="backups.apply_retention")
def apply_retention() -> list[str]:
    """Expire backups the active retention policy does not keep. Idempotent."""
    from backups.services import retention

    return retention.retention_apply()


@shared_task(name="backups.reap_dead_jobs")
def reap_dead_jobs() -> int:
    """Mark failed every running job whose process is gone or silent. Idempotent."""
    from backups.services import runs

    return runs.jobs_reap()


@shared_task(name="backups.cleanup_history")
def cleanup_history() -> dict[str, int]:
    """Delete finished job rows older than 30 days (the spec's workflow retention). Idempotent."""
    from backups.services import runs

    return runs.history_cleanup()


@worker_ready.connect
def _reap_at_worker_start(**_kwargs) -> None:
    # A worker that restarts after a crash finds its previous runs still "running".
    reap_dead_jobs.delay()
