"""Celery jobs of exports: the build (per tenant) and the daily deletion of expired files."""

from __future__ import annotations

import logging

from celery import shared_task
from django.utils import timezone

from privacy.exports import services
from tenants import db
from tenants.models import Tenant
from tenants.tasks import RETRY_TRANSIENT, TenantTask

logger = logging.getLogger(__name__)


@shared_task(
    base=TenantTask,
    name="privacy.export_build",
    tenant_transaction=False,
    soft_time_limit=2 * 3600,
    time_limit=services.BUILD_TIME_LIMIT_SECONDS,
    **RETRY_TRANSIENT,
)
def export_build(export_id: str) -> str:
    """Build one export's ZIP and store it; return its status.

    Idempotent: a ready export is left alone, an interrupted one is built again from scratch
    into the same key.
    """
    export = services.export_build(export_id=export_id)
    logger.info("export %s: %s", export.pk, export.status)
    return export.status


@shared_task(name="privacy.exports_delete_expired", **RETRY_TRANSIENT)
def exports_delete_expired() -> int:
    """Delete the files (every version) of exports past EXPORT_RETENTION_DAYS; return how many.

    Also fails the builds that stalled (services.STALLED_AFTER). Idempotent: a deleted export
    is no longer due, a failed one no longer stalled. Each tenant in its own context,
    committed as it goes.
    """
    now, deleted, stalled = timezone.now(), 0, 0
    for tenant_id in Tenant.objects.values_list("pk", flat=True):
        with db.tenant_context(tenant_id, atomic=False):
            stalled += services.exports_fail_stalled(now=now)
            deleted += services.exports_delete_expired(now=now)
    logger.info("exports deleted: %d, stalled builds failed: %d", deleted, stalled)
    return deleted
