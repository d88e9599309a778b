"""Backup tasks under redelivery: a real worker process on the real Redis broker.

The broker redelivers a late-acknowledged message once it has been unacknowledged for the
visibility timeout, whether or not its first delivery still runs. Production sets that timeout
above every task's hard limit; these tests set it to 2 s and run a job longer than that.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid

import pytest

from backups import tasks
from backups.models import BackupRun, JobStatus
from backups.services import runs
from tests.backups import slow_tasks
from tests.support import celery_worker

pytestmark = [pytest.mark.redis]

SKIPPED_ALIVE = "this message is running in another live process"
SKIPPED_DONE = "this message already ran to the end"


@pytest.fixture
def broker(settings, committed_db, tmp_path):
    """A private queue and key prefix on the real Redis; the workers started are killed after."""
    if not settings.REDIS_URL:
        pytest.skip("needs a real Redis broker (REDIS_URL)")
    prefix = f"test-{uuid.uuid4().hex[:12]}:"
    processes: list[subprocess.Popen] = []

    class Broker:
        queue = f"test-{uuid.uuid4().hex}"
        log = tmp_path / "worker.log"

        def options(self, **extra) -> dict:
            return {"global_keyprefix": prefix, **extra}

        def start_worker(self, *, concurrency: int = 1, **options) -> subprocess.Popen:
            worker = celery_worker.start(
                queue=self.queue,
                transport_options=self.options(**options),
                log=self.log,
                concurrency=concurrency,
                include="tests.backups.slow_tasks",
            )
            processes.append(worker)
            return worker

        def send(self, seconds: float, *, task_id: str | None = None):
            with celery_worker.connection(self.options()) as conn:
                return slow_tasks.slow_backup.apply_async(
                    args=[seconds], queue=self.queue, connection=conn, task_id=task_id
                )

        def logged(self, text: str) -> bool:
            return self.log.exists() and text in self.log.read_text()

    yield Broker()
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    with celery_worker.connection({"global_keyprefix": prefix}) as conn:
        client = conn.default_channel.client
        for key in client.scan_iter(match="*"):  # the prefixed client sees only its own keys
            client.delete(key)


# Redelivery 2 s after delivery, looked for every second (kombu's default: every 100 s).
SHORT_VISIBILITY = {
    "visibility_timeout": 2,
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}


@pytest.mark.parametrize(
    ("concurrency", "skipped"),
    [
        # A free pool process takes the redelivered copy while the first still runs.
        (2, SKIPPED_ALIVE),
        # The only pool process is busy: the copy waits, and comes after the first finished.
        (1, SKIPPED_DONE),
    ],
)
def test_task_outliving_the_visibility_timeout_runs_once(broker, concurrency, skipped):
    broker.start_worker(concurrency=concurrency, **SHORT_VISIBILITY)
    result = broker.send(5)

    run_id = result.get(timeout=30)
    celery_worker.wait_for(
        lambda: broker.logged(skipped) or BackupRun.objects.count() > 1,
        timeout=15,
        what="the redelivered copy",
    )

    assert list(BackupRun.objects.values_list("pk", "status")) == [(run_id, JobStatus.SUCCEEDED)]
    assert broker.logged(skipped)


def _lock_holder(name: str) -> subprocess.Popen:
    """A process holding the job lock `name` until killed."""
    script = textwrap.dedent(
        f"""
        import django, sys, time
        django.setup()
        from backups.services import runs
        with runs.job_lock("{name}"):
            print("held", flush=True)
            time.sleep(600)
        """
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=celery_worker.ROOT,
        env=celery_worker.environment(DJANGO_SETTINGS_MODULE="metis.settings"),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_backup_killed_mid_run_is_not_started_again_while_its_first_process_lives(broker):
    first_worker = broker.start_worker()
    task_id = broker.send(600).id
    first = celery_worker.wait_for(
        lambda: BackupRun.objects.filter(status=JobStatus.RUNNING).first(), what="the first run"
    )
    os.killpg(first_worker.pid, signal.SIGKILL)  # the worker dies mid-run, its message unacked
    first_worker.wait()

    # Stands for the first delivery's process, still alive (a worker cut off from Redis but not
    # from PostgreSQL, say): it holds the lock that process held, and nothing else.
    holder = _lock_holder(f"celery-task:{task_id}")
    try:
        # Another worker redelivers the unacknowledged message: it must step aside.
        broker.start_worker(**SHORT_VISIBILITY)
        celery_worker.wait_for(
            lambda: broker.logged(SKIPPED_ALIVE) or BackupRun.objects.count() > 1,
            timeout=20,
            what="the redelivery",
        )
        assert list(BackupRun.objects.values_list("pk", flat=True)) == [first.pk]
        assert broker.logged(SKIPPED_ALIVE)
    finally:
        holder.kill()
        holder.wait()

    # With its first process gone, the next delivery of the message (sent here as the broker
    # would) runs, and the dead run is marked failed before the new one starts.
    broker.send(0.1, task_id=task_id).get(timeout=30)
    first.refresh_from_db()
    assert first.status == JobStatus.FAILED and "is gone" in first.error
    again = BackupRun.objects.exclude(pk=first.pk).get()
    assert again.status == JobStatus.SUCCEEDED


def test_backup_is_skipped_while_another_of_the_stanza_runs(committed_db, settings, tmp_path):
    settings.BACKUP_REPO_CIPHER_PASS = "not used: nothing reaches pgBackRest"
    settings.BACKUP_REPO_TYPE = "posix"
    settings.BACKUP_REPO_LOCAL_PATH = str(tmp_path)
    holder = _lock_holder("physical-backup")  # a full backup, say, in another worker
    try:
        assert tasks.backup_incremental.apply().get() is None
        assert not BackupRun.objects.exists()  # not even a failed run in the catalog
    finally:
        holder.kill()
        holder.wait()
    with runs.job_lock("physical-backup"):  # free as soon as its holder died
        pass
