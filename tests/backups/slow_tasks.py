"""A backup-shaped task that takes as long as it is told, for the redelivery tests.

Loaded by the test's worker process (`--include`): a BackupTask whose body is a catalogued,
exclusive job like every backup's, minus pgBackRest, so each run the body makes is a row.
"""

from __future__ import annotations

import time

from celery import shared_task

from backups.models import BackupKind, BackupRun
from backups.services import runs
from backups.tasks import BackupTask

LOCK = "tests-slow-backup"


@shared_task(base=BackupTask, name="tests.slow_backup")
def slow_backup(seconds: float) -> int:
    """Run a catalogued job for `seconds`. Not idempotent: each run is a new row."""
    with runs.job_run_exclusive(BackupRun, lock=LOCK, kind=BackupKind.LOGICAL, label="slow") as run:
        time.sleep(seconds)
        runs.job_succeed(run)
    return run.pk
