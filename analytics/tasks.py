"""Celery tasks of the analytics app: thin wrappers around analytics.services."""

from __future__ import annotations

from celery import shared_task

from analytics import services
from tenants.tasks import RETRY_TRANSIENT

# A drain is short: a batch at a time, each committed and deduplicated in ClickHouse, so a limit
# that stops one loses nothing and counts nothing twice.
DRAIN_LIMITS = {"soft_time_limit": 2 * 60, "time_limit": 3 * 60}


# No retries: beat runs it again in a few seconds, and retries would pile up behind an outage.
@shared_task(name="analytics.drain_outbox", ignore_result=True, **DRAIN_LIMITS)
def drain_outbox() -> dict:
    """Deliver every tenant's pending events to ClickHouse. Idempotent (deduplicated inserts).

    Scheduled by beat every few seconds (editable in the admin); overlapping runs are safe.
    """
    result = services.outbox_drain()
    return {"sent": result.sent, "rejected": result.rejected, "unavailable": result.unavailable}


@shared_task(
    name="analytics.drain_tenant_outbox",
    ignore_result=True,
    **DRAIN_LIMITS,
    **RETRY_TRANSIENT,
)
def drain_tenant_outbox(tenant_id: str) -> dict:
    """Deliver one tenant's pending events now. Idempotent.

    Not a TenantTask: the drain commits once per batch, outside one enclosing transaction, and
    enters the tenant's context itself.
    """
    result = services.outbox_drain_tenant(tenant_id=tenant_id)
    return {"sent": result.sent, "rejected": result.rejected, "unavailable": result.unavailable}


@shared_task(name="analytics.purge_sent_outbox", ignore_result=True, **RETRY_TRANSIENT)
def purge_sent_outbox() -> int:
    """Delete outbox rows delivered more than ANALYTICS_OUTBOX_KEEP_DAYS ago. Idempotent."""
    return services.outbox_purge_sent()
