"""Weekly per-tenant usage reports, computed by DuckDB over a Parquet export.

Each active tenant gets `tenants/{tenant-id}/reports/usage-<ISO week>.csv` with its own figures
only: documents by type and by storage tier (live documents, with their bytes), total storage,
uploads during the week, and users. Every figure comes from one parameterised query filtered on
the tenant's id; the report for a week is replaced, not duplicated, when it is generated again.

The report is stored as an object only, not as a `Document` row: documents are created by the
documents services (versions, access log, the no-orphan rule), and a second hand-made path
for them here would bypass those invariants.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from dataclasses import dataclass

from analytics import duck, exports
from metis.objectstore import prefixes, store
from tenants.models import Tenant

CSV_COLUMNS = ("tenant_id", "week", "snapshot_at", "metric", "dimension", "value")

# Every query is filtered on $tenant; nothing else reaches the tenant's report.
_FIGURES = (
    (
        "documents_by_type",
        "SELECT document_type, count(*) FROM documents "
        "WHERE tenant_id = $tenant AND deleted_at IS NULL GROUP BY ALL ORDER BY 1",
    ),
    (
        "bytes_by_type",
        "SELECT document_type, sum(size_bytes) FROM documents "
        "WHERE tenant_id = $tenant AND deleted_at IS NULL GROUP BY ALL ORDER BY 1",
    ),
    (
        "documents_by_tier",
        "SELECT storage_class, count(*) FROM documents "
        "WHERE tenant_id = $tenant AND deleted_at IS NULL GROUP BY ALL ORDER BY 1",
    ),
    (
        "bytes_by_tier",
        "SELECT storage_class, sum(size_bytes) FROM documents "
        "WHERE tenant_id = $tenant AND deleted_at IS NULL GROUP BY ALL ORDER BY 1",
    ),
    (
        "storage_bytes",
        "SELECT 'total', coalesce(sum(size_bytes), 0) FROM documents "
        "WHERE tenant_id = $tenant AND deleted_at IS NULL",
    ),
    (
        "uploads_in_week_by_type",
        "SELECT document_type, count(*) FROM documents WHERE tenant_id = $tenant "
        "AND created_at >= $week_start AND created_at < $week_end GROUP BY ALL ORDER BY 1",
    ),
    (
        "users",
        "SELECT 'total', count(*) FROM users WHERE tenant_id = $tenant "
        "UNION ALL SELECT 'active', count(*) FILTER (WHERE is_active) FROM users "
        "WHERE tenant_id = $tenant",
    ),
)


@dataclass(frozen=True)
class ReportWeek:
    """An ISO week: `label` like 2026-W47, from Monday 00:00 UTC to the next Monday."""

    label: str
    start: dt.datetime
    end: dt.datetime

    @classmethod
    def containing(cls, day: dt.date) -> ReportWeek:
        monday = day - dt.timedelta(days=day.weekday())
        start = dt.datetime.combine(monday, dt.time(), tzinfo=dt.UTC)
        year, week, _ = monday.isocalendar()
        return cls(f"{year}-W{week:02d}", start, start + dt.timedelta(days=7))

    @classmethod
    def last_complete(cls, today: dt.date) -> ReportWeek:
        return cls.containing(today - dt.timedelta(days=today.weekday() + 1))


def usage_report_key(tenant_id: uuid.UUID | str, week: ReportWeek) -> str:
    return f"{prefixes.tenant_prefix(tenant_id)}reports/usage-{week.label}.csv"


def _figures(connection, tenant_id: uuid.UUID, week: ReportWeek) -> list[tuple[str, str, int]]:
    parameters = {"tenant": str(tenant_id), "week_start": week.start, "week_end": week.end}
    rows = []
    for metric, sql in _FIGURES:
        names = {name for name in parameters if f"${name}" in sql}
        for dimension, value in connection.execute(
            sql, {name: parameters[name] for name in names}
        ).fetchall():
            rows.append((metric, dimension, int(value or 0)))
    return rows


def usage_report_generate(*, tenant_id: uuid.UUID | str, manifest: dict, week: ReportWeek) -> str:
    """Write `tenant_id`'s usage report for `week` from the export `manifest`; return its key."""
    tenant = Tenant.objects.get(pk=uuid.UUID(str(tenant_id)))
    connection = duck.connect_s3(
        views={name: manifest["tables"][name]["key"] for name in exports.TABLE_NAMES}
    )
    try:
        figures = _figures(connection, tenant.pk, week)
    finally:
        connection.close()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for metric, dimension, value in figures:
        writer.writerow((tenant.pk, week.label, manifest["created_at"], metric, dimension, value))
    key = usage_report_key(tenant.pk, week)
    store.documents_store().put_bytes(
        key=key, data=out.getvalue().encode(), content_type="text/csv"
    )
    return key


def usage_reports_generate(*, week: ReportWeek, manifest: dict | None = None) -> list[str]:
    """Write this week's report for every active tenant (from a fresh export if none given)."""
    manifest = manifest or exports.export_run().manifest()
    return [
        usage_report_generate(tenant_id=tenant.pk, manifest=manifest, week=week)
        for tenant in Tenant.objects.active().order_by("pk")
    ]
