"""Celery jobs of the DuckDB side: the daily Parquet export and the weekly usage reports.

Scheduled by the data migration analytics/0011 (editable in the admin's periodic tasks).
"""

from __future__ import annotations

import datetime as dt
import logging

from celery import shared_task
from django.conf import settings

from analytics import exports, reports
from tenants import db
from tenants.models import Tenant
from tenants.tasks import RETRY_TRANSIENT, TenantTask, enqueue_for_tenant

logger = logging.getLogger(__name__)


def _log_progress(table: str, done: int, total: int) -> None:
    if done == total or done % 50_000 == 0:
        logger.info("export %s: %d/%d rows", table, done, total)


@shared_task(
    name="analytics.export_parquet", soft_time_limit=30 * 60, time_limit=35 * 60, **RETRY_TRANSIENT
)
def export_parquet() -> str:
    """Export tenants, users and documents to a new Parquet run; return its id.

    Idempotent in effect: each run writes its own folder and then moves `latest.json`.
    """
    run = exports.export_run(progress=_log_progress)
    logger.info("export %s done: %s", run.run_id, run.tables)
    pruned = exports.export_prune(keep=settings.DUCKDB_EXPORT_KEEP_RUNS)
    logger.info("export runs deleted: %s", pruned or "none")
    return run.run_id


@shared_task(
    name="analytics.usage_reports_weekly",
    soft_time_limit=45 * 60,
    time_limit=50 * 60,
    **RETRY_TRANSIENT,
)
def usage_reports_weekly(today: str | None = None) -> str:
    """Export afresh, then queue last week's usage report for every active tenant.

    Idempotent: a report for the same tenant and week replaces the previous one.
    """
    day = dt.date.fromisoformat(today) if today else dt.datetime.now(dt.UTC).date()
    week = reports.ReportWeek.last_complete(day)
    run = exports.export_run(progress=_log_progress)
    for tenant_id in Tenant.objects.active().values_list("pk", flat=True):
        enqueue_for_tenant(
            usage_report_for_tenant,
            tenant_id,
            run_id=run.run_id,
            week_day=week.start.date().isoformat(),
        )
    return run.run_id


@shared_task(
    name="analytics.usage_report_for_tenant",
    base=TenantTask,
    soft_time_limit=10 * 60,
    time_limit=12 * 60,
    **RETRY_TRANSIENT,
)
def usage_report_for_tenant(*, run_id: str, week_day: str) -> str:
    """Write one tenant's usage report for the week containing `week_day`. Idempotent.

    Runs inside the tenant's context (TenantTask); the tenant id comes from the message.
    """
    manifest = exports.export_manifest(run_id)
    if manifest is None:
        raise RuntimeError(f"export {run_id} has no manifest: it did not complete")
    week = reports.ReportWeek.containing(dt.date.fromisoformat(week_day))
    return reports.usage_report_generate(
        tenant_id=db.current_tenant_id(), manifest=manifest, week=week
    )
