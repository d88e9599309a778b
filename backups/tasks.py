"""Celery tasks for backups: thin wrappers over the services, scheduled by beat (admin-editable).

None of them is tenant work: they run with no tenant context. Every run is catalogued, and
a task killed midway leaves a running row that `reap_dead_jobs` marks failed.

They run on the `backups` queue (settings.CELERY_TASK_ROUTES), one at a time, with time limits
of hours; the catalog's housekeeping runs on the default queue. The tasks that are not
idempotent (each call backs up anew) are `BackupTask`s: a redelivered message never runs while
its first delivery is alive, nor after it finished; the idempotent ones retry transient errors.
"""

from __future__ import annotations

import logging

from celery import Task, shared_task
from celery.exceptions import Ignore
from celery.signals import worker_ready

from backups.models import BackupKind
from backups.services import runs
from tenants.tasks import RETRY_TRANSIENT

logger = logging.getLogger(__name__)

MINUTE = 60
HOUR = 60 * MINUTE
# The hard limit leaves the soft one ten minutes to clean up (scratch clusters, the job's row).
CLEAN_UP = 10 * MINUTE


class BackupTask(Task):
    """A job that must run at most once per message, and never beside itself.

    The broker may deliver a message again while its first delivery still runs (late
    acknowledgement past the visibility timeout), or after it finished. While this message's
    first run is alive, a PostgreSQL advisory lock on its task id (held by that process's own
    connection, released by the server when the process dies) makes the second one step
    aside; once it finished, the result backend says so. Every service these tasks call holds
    a lock of its own too (`runs.job_run_exclusive`): two different messages asking for a
    backup of the same stanza never run at once either; the second is skipped, not failed.
    """

    abstract = True

    def __call__(self, *args, **kwargs):
        task_id = self.request.id
        if not task_id or self.request.is_eager:
            return self._run_unless_locked(*args, **kwargs)
        try:
            with runs.job_lock(f"celery-task:{task_id}"):
                if self.AsyncResult(task_id).ready():
                    logger.warning("%s: this message already ran to the end; not again", self.name)
                    raise Ignore()
                return self._run_unless_locked(*args, **kwargs)
        except runs.JobLocked:
            logger.warning("%s: this message is running in another live process", self.name)
            raise Ignore() from None

    def _run_unless_locked(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except runs.JobLocked as exc:
            logger.warning("%s skipped: %s", self.name, exc)
            return None


@shared_task(
    name="backups.backup_full",
    base=BackupTask,
    soft_time_limit=6 * HOUR,
    time_limit=6 * HOUR + CLEAN_UP,
)
def backup_full(*, verify: bool = True) -> list[int]:
    """Take a full backup into every repository (the second region's too), then verify and
    restore-test each. Not idempotent: each call backs up."""
    from backups.services import physical

    return [run.pk for run in physical.backup_run_every_repo(kind=BackupKind.FULL, verify=verify)]


@shared_task(
    name="backups.verify_backup",
    soft_time_limit=4 * HOUR,
    time_limit=4 * HOUR + CLEAN_UP,
    **RETRY_TRANSIENT,
)
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


@shared_task(
    name="backups.backup_incremental",
    base=BackupTask,
    soft_time_limit=2 * HOUR,
    time_limit=2 * HOUR + CLEAN_UP,
)
def backup_incremental() -> list[int]:
    """Take an incremental backup on top of the latest one, in every repository. Not idempotent."""
    from backups.services import physical

    return [run.pk for run in physical.backup_run_every_repo(kind=BackupKind.INCR)]


@shared_task(
    name="backups.backup_logical",
    base=BackupTask,
    soft_time_limit=4 * HOUR,
    time_limit=4 * HOUR + CLEAN_UP,
)
def backup_logical() -> int:
    """Dump the database logically (pg_dump -Fc, encrypted) and verify it. Not idempotent."""
    from backups.services import logical, object_backups

    run = logical.backup_run_logical()
    object_backups.object_backup_verify(run=run)
    return run.pk


@shared_task(
    name="backups.backup_analytics",
    base=BackupTask,
    soft_time_limit=2 * HOUR,
    time_limit=2 * HOUR + CLEAN_UP,
)
def backup_analytics() -> int:
    """Export every ClickHouse events partition to encrypted Parquet. Not idempotent."""
    from analytics import clickhouse
    from backups.services import analytics, object_backups

    with clickhouse.session() as client:
        run = analytics.backup_run_analytics(client=client)
    object_backups.object_backup_verify(run=run)
    return run.pk


@shared_task(
    name="backups.archive_copy",
    base=BackupTask,
    soft_time_limit=4 * HOUR,
    time_limit=4 * HOUR + CLEAN_UP,
)
def archive_copy() -> int:
    """Copy the newest good full backup to long-term (Glacier) storage. Not idempotent."""
    from backups.services import archive_copy as service

    return service.backup_archive_copy().pk


@shared_task(
    name="backups.restore_drill",
    base=BackupTask,
    soft_time_limit=6 * HOUR,
    time_limit=6 * HOUR + CLEAN_UP,
)
def restore_drill() -> int:
    """Run a restore drill (monthly). Not idempotent: each call is a new drill."""
    from backups.services import drill

    return drill.drill_run().pk


@shared_task(
    name="backups.region_loss_drill",
    base=BackupTask,
    soft_time_limit=6 * HOUR,
    time_limit=6 * HOUR + CLEAN_UP,
)
def region_loss_drill() -> int | None:
    """Run a restore drill from the second region's repository alone (monthly). Not
    idempotent. With no second region configured it records nothing and logs why."""
    from backups import config
    from backups.services import drill

    if config.repo().second is None:
        logger.warning("region-loss drill skipped: no second region (BACKUP_REPO2_*) configured")
        return None
    return drill.drill_run(repo=2).pk


@shared_task(
    name="backups.archive_check",
    soft_time_limit=10 * MINUTE,
    time_limit=12 * MINUTE,
    **RETRY_TRANSIENT,
)
def archive_check() -> int:
    """Check WAL archiving end to end and record it (hourly). Idempotent."""
    from backups.services import archiving

    return archiving.archive_check_record().pk


@shared_task(
    name="backups.apply_retention",
    soft_time_limit=30 * MINUTE,
    time_limit=35 * MINUTE,
    **RETRY_TRANSIENT,
)
def apply_retention() -> list[str]:
    """Expire backups the active retention policy does not keep. Idempotent."""
    from backups.services import retention

    return retention.retention_apply()


@shared_task(name="backups.reap_dead_jobs", **RETRY_TRANSIENT)
def reap_dead_jobs() -> int:
    """Mark failed every running job whose process is gone or silent. Idempotent."""
    from backups.services import runs

    return runs.jobs_reap()


@shared_task(name="backups.cleanup_history", **RETRY_TRANSIENT)
def cleanup_history() -> dict[str, int]:
    """Delete finished job rows older than 30 days (the spec's workflow retention). Idempotent."""
    from backups.services import runs

    return runs.history_cleanup()


@worker_ready.connect
def _reap_at_worker_start(**_kwargs) -> None:
    # A worker that restarts after a crash finds its previous runs still "running".
    reap_dead_jobs.delay()
