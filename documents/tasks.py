"""Celery tasks for documents: the daily tiering run, the periodic restore check and its mail,
the copies to the DR bucket.

Beat starts the fan-out tasks (schedules in migration 0010, editable in the admin); each sends
one TenantTask per active tenant, which runs inside that tenant's context.
"""

from __future__ import annotations

import smtplib

from celery import shared_task
from django.conf import settings

from documents import replication, restore, restore_mail, tiering
from tenants import db
from tenants.models import Tenant
from tenants.tasks import RETRY_TRANSIENT, TRANSIENT_ERRORS, TenantTask, enqueue_for_tenant

# A mail server that is away or hung up is "not now" (refused recipients are not): retry.
MAIL_RETRY = {
    **RETRY_TRANSIENT,
    "autoretry_for": (*TRANSIENT_ERRORS, smtplib.SMTPConnectError, smtplib.SMTPServerDisconnected),
}


def _active_tenant_ids() -> list:
    return list(Tenant.objects.filter(is_active=True).order_by("pk").values_list("pk", flat=True))


@shared_task(name="documents.tier_all_tenants", **RETRY_TRANSIENT)
def tier_all_tenants() -> int:
    """Send one tiering task per active tenant; return how many. Idempotent."""
    tenant_ids = _active_tenant_ids()
    for tenant_id in tenant_ids:
        enqueue_for_tenant(tier_tenant, tenant_id)
    return len(tenant_ids)


# One batch (DOCUMENT_TIER_BATCH_SIZE copies) fits the default time limits. Not one
# transaction: each document is recorded as soon as its object is copied (documents/tiering.py).
@shared_task(
    base=TenantTask, name="documents.tier_tenant", tenant_transaction=False, **RETRY_TRANSIENT
)
def tier_tenant(after: str | None = None) -> dict[str, int]:
    """Tier one batch of the tenant's due documents; send the next batch if more are due.

    Idempotent: a document already in its class is skipped, and an object copied by a run that
    died before its database update is only recorded (by the sweep, within minutes).
    """
    report = tiering.documents_tier_due(
        tenant_id=db.current_tenant_id(), limit=settings.DOCUMENT_TIER_BATCH_SIZE, after=after
    )
    if report.more:
        enqueue_for_tenant(tier_tenant, report.tenant_id, after=str(report.last_id))
    return dict(report.outcomes)


@shared_task(name="documents.sweep_interrupted_tiering", **RETRY_TRANSIENT)
def sweep_interrupted_tiering() -> int:
    """Send one interrupted-tiering sweep per active tenant; return how many. Idempotent."""
    tenant_ids = _active_tenant_ids()
    for tenant_id in tenant_ids:
        enqueue_for_tenant(sweep_interrupted_tiering_for_tenant, tenant_id)
    return len(tenant_ids)


@shared_task(
    base=TenantTask,
    name="documents.sweep_interrupted_tiering_for_tenant",
    tenant_transaction=False,
    **RETRY_TRANSIENT,
)
def sweep_interrupted_tiering_for_tenant() -> dict[str, int]:
    """Record the real class of documents whose tiering run died; send more if left. Idempotent."""
    report = tiering.documents_tiering_sweep(tenant_id=db.current_tenant_id())
    if report.more:
        enqueue_for_tenant(sweep_interrupted_tiering_for_tenant, report.tenant_id)
    return dict(report.outcomes)


@shared_task(name="documents.check_restores", **RETRY_TRANSIENT)
def check_restores() -> int:
    """Send one restore check per active tenant; return how many. Idempotent."""
    tenant_ids = _active_tenant_ids()
    for tenant_id in tenant_ids:
        enqueue_for_tenant(check_restores_for_tenant, tenant_id)
    return len(tenant_ids)


@shared_task(base=TenantTask, name="documents.check_restores_for_tenant", **RETRY_TRANSIENT)
def check_restores_for_tenant() -> dict[str, int]:
    """Update the restore state of the tenant's documents being restored. Idempotent."""
    return restore.documents_restore_check_pending(tenant_id=db.current_tenant_id())


@shared_task(base=TenantTask, name="documents.mail_restore_ready", **MAIL_RETRY)
def mail_restore_ready(document_id: str) -> bool:
    """Mail the tenant user who asked for the document's restore that it is ready. Idempotent:
    once per restore (restore_notified_at, under the row's lock); retried while the mail
    server is away."""
    return restore_mail.restore_ready_mail_send(document_id=document_id)


@shared_task(
    base=TenantTask,
    name="documents.replicate_versions",
    tenant_transaction=False,
    **RETRY_TRANSIENT,
)
def replicate_versions(version_ids: list[int]) -> dict[str, int]:
    """Copy these stored versions to the DR bucket, verified. Idempotent: a version already
    copied is skipped; a retry after a lost connection copies only what was not recorded."""
    return dict(replication.versions_replicate(version_ids=version_ids).outcomes)


@shared_task(name="documents.replicate_all_tenants", **RETRY_TRANSIENT)
def replicate_all_tenants() -> int:
    """Send one DR sweep per active tenant (none without a DR bucket); return how many.
    Idempotent."""
    if not replication.dr_enabled():
        return 0
    tenant_ids = _active_tenant_ids()
    for tenant_id in tenant_ids:
        enqueue_for_tenant(replicate_tenant, tenant_id)
    return len(tenant_ids)


@shared_task(
    base=TenantTask, name="documents.replicate_tenant", tenant_transaction=False, **RETRY_TRANSIENT
)
def replicate_tenant(after: int | None = None) -> dict[str, int]:
    """Copy a batch of the tenant's versions not yet in the DR bucket (ids after `after`); send
    the next batch if more are due. Idempotent."""
    report = replication.versions_replicate(after=after)
    if report.more:
        enqueue_for_tenant(replicate_tenant, report.tenant_id, after=report.last_id)
    return dict(report.outcomes)
