"""The lifecycle of catalog jobs: start, heartbeat, finish, and the reaper for dead ones.

A job row is written as `running` with the pid and host of its process before the work starts,
and only the job itself marks it succeeded. A process that dies (killed worker, OOM, reboot)
cannot mark anything, so the reaper does: a running job whose pid is gone from this host, or
whose heartbeat is older than BACKUP_REAPER_STALE_MINUTES, is marked failed.

Jobs that must never run twice at once (a backup of the same stanza, a drill) start through
`job_run_exclusive`, which holds a PostgreSQL advisory lock for the job's whole life (`job_lock`).
"""

from __future__ import annotations

import datetime
import hashlib
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

import psycopg
from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone

from backups import events
from backups.models import BackupRun, Job, JobStatus, RestoreDrill
from backups.services import history_archive
from metis.events import recorder
from tenants import db as tenant_db

J = TypeVar("J", bound=Job)

HEARTBEAT_EVERY_SECONDS = 2.0


def this_host() -> str:
    return socket.gethostname()


def job_start(model: type[J], **fields) -> J:
    """Create a running job row for this process and commit it, so the reaper can see it."""
    with transaction.atomic():
        return model.objects.create(
            status=JobStatus.RUNNING, pid=os.getpid(), host=this_host(), **fields
        )


class Heartbeat:
    """Write a job's progress and liveness to its row, at most every couple of seconds."""

    def __init__(self, job: Job, *, on_progress=None) -> None:
        self.job = job
        self.on_progress = on_progress
        self._last_write = 0.0

    def __call__(self, percent: float) -> None:
        if self.on_progress is not None:
            self.on_progress(percent)
        now = time.monotonic()
        if now - self._last_write < HEARTBEAT_EVERY_SECONDS and percent < 100:
            return
        self._last_write = now
        type(self.job).objects.filter(pk=self.job.pk, status=JobStatus.RUNNING).update(
            progress=int(percent), heartbeat_at=timezone.now()
        )


def job_succeed(job: J, **fields) -> J:
    with transaction.atomic():
        for name, value in fields.items():
            setattr(job, name, value)
        job.status = JobStatus.SUCCEEDED
        job.finished_at = timezone.now()
        job.progress = 100
        job.save()
        _tenant_event_record(job, events.RUN_SUCCEEDED)
    return job


def job_fail(job: J, *, error: str, **fields) -> J:
    with transaction.atomic():
        for name, value in fields.items():
            setattr(job, name, value)
        job.status = JobStatus.FAILED
        job.finished_at = timezone.now()
        job.error = error[-10000:]
        job.save()
        _tenant_event_record(job, events.RUN_FAILED, error=error[-500:])
    return job


def _tenant_event_record(job: Job, event_type: str, **data) -> None:
    # Analytics events belong to a tenant: only a run for one tenant (its export) has one.
    # Platform-wide runs are in the catalog and on the backups dashboard instead.
    if isinstance(job, BackupRun) and job.tenant_id is not None:
        # The job lifecycle is a system job's entry point (its catalog rows commit on their
        # own, outside any tenant transaction): it opens the tenant's context for the event.
        with tenant_db.tenant_context(job.tenant_id):
            recorder.record_event(
                tenant=job.tenant_id,
                event_type=event_type,
                data={
                    "backup_id": job.pk,
                    "kind": job.kind,
                    "size_bytes": job.stored_bytes,
                    **data,
                },
            )


class JobLocked(RuntimeError):
    """Another live process runs this job: this one must not start."""


def _lock_key(name: str) -> int:
    # pg_advisory_*_lock(bigint): a stable 64-bit key per job name, namespaced by "metis.jobs".
    digest = hashlib.sha256(f"metis.jobs:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _lock_connection() -> psycopg.Connection:
    # A connection of its own, never one from the pool: the pool resets a returned connection
    # (DISCARD ALL, which drops session locks) and would hand it to other code meanwhile.
    params = connections["default"].get_connection_params()
    params = {
        key: value for key, value in params.items() if key not in {"cursor_factory", "context"}
    }
    # A host that vanishes (no FIN, no RST) is noticed in about a minute, not hours.
    tcp = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}
    return psycopg.connect(**params, **tcp, application_name="metis job lock")


@contextmanager
def job_lock(name: str) -> Iterator[None]:
    """Hold the lock `name` for the block, or raise JobLocked if a live process holds it.

    The lock is a transaction-level advisory lock, taken in a transaction left open for the
    block on a connection of its own. The server releases it when that transaction ends: at
    the block's end, or when the connection drops because the process died (SIGKILL, OOM, a
    hard time limit). So a live job is never overtaken however long it runs, and a dead one
    never blocks its successor; a Redis lock with a TTL gets at most one of the two right.
    A transaction, not a session lock, so it also holds through PgBouncer in transaction mode.
    It holds no snapshot and no transaction id, so it does not hold back vacuum.
    """
    conn = _lock_connection()
    try:
        # An idle-in-transaction timeout on the role would end the transaction, and the lock.
        conn.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
        row = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", [_lock_key(name)]).fetchone()
        if not (row and row[0]):
            raise JobLocked(f"{name} is already running in another live process")
        yield
    finally:
        conn.close()  # ends the transaction, which releases the lock


@contextmanager
def job_run_exclusive(model: type[J], *, lock: str, **fields) -> Iterator[J]:
    """Start a job under the lock `lock` and guard it (`job_guard`); JobLocked if it is taken.

    With the lock ours, whoever held it before is dead: its row, still `running`, is reaped
    first, so the catalog never shows two of these jobs running.
    """
    with job_lock(lock):
        jobs_reap()
        job = job_start(model, **fields)
        with job_guard(job):
            yield job


@contextmanager
def job_guard(job: J) -> Iterator[J]:
    """Mark `job` failed (and re-raise) if the block raises; a clean exit leaves it to the block."""
    try:
        yield job
    except BaseException as exc:  # KeyboardInterrupt/SystemExit too: never leave it running
        job.refresh_from_db()
        if job.status == JobStatus.RUNNING:
            job_fail(job, error=f"{type(exc).__name__}: {exc}")
        raise


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed, not yet reaped by its parent) is not alive either.
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def jobs_reap(*, now: datetime.datetime | None = None) -> int:
    """Mark failed every running job whose process is gone or silent too long; return how many."""
    now = now or timezone.now()
    stale_before = now - datetime.timedelta(minutes=settings.BACKUP_REAPER_STALE_MINUTES)
    host = this_host()
    reaped = 0
    for model in (BackupRun, RestoreDrill):
        for job in model.objects.running():
            if job.host == host and job.pid and not _pid_alive(job.pid):
                reason = f"process {job.pid} on {host} is gone"
            elif job.heartbeat_at < stale_before:
                reason = f"no heartbeat since {job.heartbeat_at:%Y-%m-%d %H:%M:%S}Z"
            else:
                continue
            with transaction.atomic():
                updated = model.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(
                    status=JobStatus.FAILED,
                    finished_at=now,
                    error=f"Reaped: {reason}; the job never finished.",
                )
            reaped += updated
    return reaped


def history_cleanup(*, now: datetime.datetime | None = None) -> dict[str, int]:
    """Archive, then delete, finished job rows older than BACKUP_HISTORY_DAYS (the spec's 30-day
    retention); delete archives past BACKUP_HISTORY_ARCHIVE_DAYS (its 90-day history archive).

    Backups still in the repository keep their row whatever their age: the catalog must list
    every backup one could restore.
    """
    now = now or timezone.now()
    cutoff = now - datetime.timedelta(days=settings.BACKUP_HISTORY_DAYS)
    from backups.models import WalArchiveCheck

    due = {
        "backup_runs": BackupRun.objects.finished_before(cutoff).exclude(
            status=JobStatus.SUCCEEDED, expired_at__isnull=True
        ),
        "drills": RestoreDrill.objects.finished_before(cutoff),
        "archive_checks": WalArchiveCheck.objects.filter(checked_at__lt=cutoff),
    }
    deleted = {}
    for table, rows in due.items():
        # Finished a month ago, these rows no longer change: archive exactly them, then delete
        # exactly them (no transaction held open across the upload).
        chosen = rows.model.objects.filter(pk__in=list(rows.values_list("pk", flat=True)))
        history_archive.history_archive(table=table, rows=chosen, now=now)
        deleted[table] = chosen.delete()[0]
    deleted["archives_pruned"] = history_archive.history_archive_prune(now=now)
    return deleted


def restore_tested_mark(run: BackupRun) -> None:
    """Record that `run` was restored successfully (by a drill, a test or a real restore)."""
    with transaction.atomic():
        BackupRun.objects.filter(pk=run.pk).update(
            restore_tested=True, restore_tested_at=timezone.now()
        )
    run.refresh_from_db()
