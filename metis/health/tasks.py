"""The heartbeat: beat sends it every HEALTH_HEARTBEAT_SECONDS, a worker runs it.

Two timestamps in the default cache, read by /readyz: when beat last sent the task
(`beat_ticked`, from the publishing process) and when a worker last ran it (`heartbeat`). A
worker that is alive but stuck behind a long queue shows as a stale heartbeat too, which is the
point.
"""

from __future__ import annotations

import time

from celery import shared_task
from django.core.cache import caches

from metis.health import checks

TASK_NAME = "metis.health.heartbeat"


def _record(key: str) -> None:
    # No timeout: the age, not the entry's presence, says whether it is fresh.
    caches["default"].set(key, time.time(), timeout=None)


@shared_task(name=TASK_NAME, ignore_result=True)
def heartbeat() -> None:
    """Record that a worker ran this just now. Idempotent; never retried: beat sends the next."""
    _record(checks.WORKER_KEY)


def beat_ticked() -> None:
    """Record that beat is sending the heartbeat now (metis.celery's before_task_publish)."""
    _record(checks.BEAT_KEY)
