"""Celery wiring: queues and their workers, time limits under the visibility timeout, retries."""

import re
from pathlib import Path

import pytest
from django.conf import settings

from metis.celery import app

ROOT = Path(__file__).resolve().parents[2]


def _project_tasks() -> dict:
    app.loader.import_default_modules()
    return {
        name: task for name, task in app.tasks.items() if not name.startswith(("celery.", "tests."))
    }


def _queue(name: str) -> str:
    route = app.amqp.router.route({}, name)
    return route["queue"].name


def test_backups_and_drills_go_to_the_backups_queue_and_housekeeping_does_not():
    assert _queue("backups.backup_full") == "backups"
    assert _queue("backups.restore_drill") == "backups"
    assert _queue("backups.verify_backup") == "backups"
    assert _queue("backups.reap_dead_jobs") == "celery"  # never behind the backup it reaps
    assert _queue("documents.tier_tenant") == "celery"
    assert _queue("analytics.drain_outbox") == "celery"


def test_every_queue_has_a_worker_in_the_procfile():
    procfile = (ROOT / "Procfile").read_text()
    consumed = set(re.findall(r"celery -A metis worker -Q (\S+)", procfile))
    routed = {_queue(name) for name in _project_tasks()}
    assert routed == {"celery", "backups"}
    assert consumed == routed
    assert re.search(r"worker-backups: .*-Q backups .*--concurrency=1", procfile)


def test_every_task_ends_before_the_broker_would_hand_it_to_another_worker():
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    assert visibility == settings.CELERY_BROKER_VISIBILITY_TIMEOUT
    for name, task in _project_tasks().items():
        hard = task.time_limit or app.conf.task_time_limit
        soft = task.soft_time_limit or app.conf.task_soft_time_limit
        assert hard and soft, f"{name} has no time limit"
        assert soft < hard < visibility, name
    assert app.tasks["backups.backup_full"].time_limit > 4 * 3600
    assert app.tasks["analytics.drain_outbox"].time_limit <= 5 * 60


def test_only_idempotent_tasks_retry():
    # Each task's docstring says whether it is safe to run again; retries follow it.
    # Beat sends these again within a minute (the heartbeat expires after one interval anyway).
    no_retry_though_idempotent = {
        "analytics.drain_outbox",
        "metis.health.heartbeat",
        "monitoring.evaluate_alerts",
    }
    for name, task in _project_tasks().items():
        doc = task.__doc__ or ""
        retries = bool(getattr(task, "autoretry_for", ()))
        if "Not idempotent" in doc or "Not\n    idempotent" in doc:
            assert not retries, f"{name} is not idempotent but retries"
        elif "dempotent" in doc and name not in no_retry_though_idempotent:
            assert retries, f"{name} is idempotent and should retry transient errors"
            assert task.retry_backoff and task.retry_jitter and task.max_retries
        else:
            assert name in no_retry_though_idempotent, f"{name}: docstring says neither"


@pytest.mark.parametrize("name", ["backups.backup_full", "backups.restore_drill"])
def test_backup_jobs_are_exclusive_tasks(name):
    from backups.tasks import BackupTask

    assert isinstance(app.tasks[name], BackupTask)
