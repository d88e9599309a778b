"""Beat tasks of the audit log (schedules: migrations 0002 and 0004), retried on transient
errors as every idempotent task is."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import connections
from django.utils import timezone

from audit import anchors, retention
from tenants.tasks import RETRY_TRANSIENT

logger = logging.getLogger(__name__)


@shared_task(name="audit.anchor_all", **RETRY_TRANSIENT)
def anchor_all() -> int:
    """Anchor every chain's head in object storage. Idempotent: a second run the same day adds
    one more version of the day's anchor, and verify reads them all."""
    return len(anchors.anchor_all())


@shared_task(name="audit.partitions_ensure", **RETRY_TRANSIENT)
def partitions_ensure(months_ahead: int = 3) -> list[str]:
    """Make sure this month's and the next `months_ahead` months' partitions exist. Idempotent.

    `metis_audit_partition_ensure` runs as the owner (SECURITY DEFINER) and makes only month
    partitions within a bounded range, so the runtime role may call it.
    """
    first = timezone.now().date().replace(day=1)
    made = []
    with connections["default"].cursor() as cursor:
        for months in range(months_ahead + 1):
            year, month = divmod(first.month - 1 + months, 12)
            cursor.execute(
                "SELECT metis_audit_partition_ensure(%s)",
                [first.replace(year=first.year + year, month=month + 1)],
            )
            made.append(cursor.fetchone()[0])
    return made


@shared_task(name="audit.retention_run", **RETRY_TRANSIENT)
def retention_run() -> list[str]:
    """Export each month past AUDIT_RETENTION_DAYS to Parquet, verify it, drop it. Idempotent:
    a month already dropped is no longer listed; one exported but not dropped (a run stopped
    between) is checked from its stored copy, not written again."""
    return [cut.partition for cut in retention.retention_run(report=logger.info)]
