"""Celery tasks of the privacy app: run an approved erasure; erase held parts when they fall due."""

from __future__ import annotations

import uuid

from celery import shared_task
from django.utils import timezone

from privacy import services
from privacy.erasure import run
from tenants.tasks import RETRY_TRANSIENT


# A large subject (thousands of documents) takes minutes: its own limits, below the broker's
# visibility timeout (tests/metis/test_celery.py).
@shared_task(
    name="privacy.erasure_run", soft_time_limit=30 * 60, time_limit=35 * 60, **RETRY_TRANSIENT
)
def erasure_run_task(*, request_id: str, tenant_id: str) -> dict:
    """Run one approved erasure. Idempotent: a second run finds nothing left to erase."""
    return run.erasure_run(request_id=uuid.UUID(request_id), tenant_id=uuid.UUID(tenant_id))


@shared_task(name="privacy.erase_due", **RETRY_TRANSIENT)
def erase_due() -> int:
    """Erase the held parts whose retention has expired (daily). Idempotent."""
    return erase_due_at(timezone.now())


def erase_due_at(now) -> int:
    """Run every held erasure due at `now` (the clock is an argument so tests can move it)."""
    due = services.erasures_due(now=now)
    for tenant_id, request_id in due:
        run.erasure_run(request_id=request_id, tenant_id=tenant_id, now=now)
    return len(due)
