"""Weekly usage reports: one per active tenant, only its own figures, under its own prefix."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest

from analytics import exports, reports
from metis.objectstore import store
from tests.analytics.conftest import make_document
from tests.factories import TenantFactory

# The export reads through the staff read role's own connection: data must be committed.
pytestmark = pytest.mark.committed

WEEK = reports.ReportWeek.containing(dt.datetime.now(dt.UTC).date())


def _rows(key):
    data = store.documents_store().read_bytes(key)
    assert data is not None, f"no report at {key}"
    return list(csv.DictReader(io.StringIO(data.decode())))


def _figures(rows):
    return {(row["metric"], row["dimension"]): int(row["value"]) for row in rows}


def test_report_week_is_the_last_complete_iso_week():
    week = reports.ReportWeek.last_complete(dt.date(2026, 11, 30))  # a Monday
    assert week.label == "2026-W48"
    assert week.start == dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    assert week.end == dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    assert reports.ReportWeek.last_complete(dt.date(2026, 11, 29)).label == "2026-W47"
    assert reports.ReportWeek.last_complete(dt.date(2027, 1, 4)).label == "2026-W53"


def test_weekly_report_of_tenant_a_holds_only_as_figures_under_as_prefix(dataset, s3_bucket):
    acme, globex = dataset.tenant, dataset.other_tenant
    keys = reports.usage_reports_generate(week=WEEK)
    acme_key = f"tenants/{acme.pk}/reports/usage-{WEEK.label}.csv"
    globex_key = f"tenants/{globex.pk}/reports/usage-{WEEK.label}.csv"
    assert sorted(keys) == sorted([acme_key, globex_key])

    rows = _rows(acme_key)
    assert {row["tenant_id"] for row in rows} == {str(acme.pk)}
    assert {row["week"] for row in rows} == {WEEK.label}
    assert _figures(rows) == {
        ("documents_by_type", "pan"): 3,
        ("bytes_by_type", "pan"): 600,
        ("documents_by_tier", "GLACIER"): 1,
        ("documents_by_tier", "STANDARD"): 2,
        ("bytes_by_tier", "GLACIER"): 300,
        ("bytes_by_tier", "STANDARD"): 300,
        ("storage_bytes", "total"): 600,
        ("uploads_in_week_by_type", "image"): 1,
        ("uploads_in_week_by_type", "pan"): 3,
        ("users", "total"): 2,
        ("users", "active"): 2,
    }
    globex_figures = _figures(_rows(globex_key))
    assert globex_figures[("documents_by_type", "aadhar")] == 2
    assert globex_figures[("storage_bytes", "total")] == 16000
    assert ("documents_by_type", "pan") not in globex_figures


def test_weekly_report_skips_inactive_tenants_and_replaces_a_rerun(dataset, s3_bucket):
    dormant = TenantFactory(name="Dormant", subdomain="dormant")
    dormant.is_active = False
    dormant.save()
    manifest = exports.export_run().manifest()
    keys = reports.usage_reports_generate(week=WEEK, manifest=manifest)
    assert not any(str(dormant.pk) in key for key in keys)
    make_document(dataset.tenant, document_type="pan", size_bytes=1)
    reports.usage_reports_generate(week=WEEK)
    folder = f"tenants/{dataset.tenant.pk}/reports/"
    assert store.documents_store().keys(folder) == [f"{folder}usage-{WEEK.label}.csv"]
    assert _figures(_rows(f"{folder}usage-{WEEK.label}.csv"))[("documents_by_type", "pan")] == 4


def test_weekly_report_lands_in_s3_under_the_tenants_prefix(dataset, s3_bucket, s3_server):
    reports.usage_reports_generate(week=WEEK)
    client = s3_server.client()
    listed = client.list_objects_v2(Bucket=s3_bucket, Prefix=f"tenants/{dataset.tenant.pk}/")
    assert [o["Key"] for o in listed["Contents"]] == [
        f"tenants/{dataset.tenant.pk}/reports/usage-{WEEK.label}.csv"
    ]
    body = client.get_object(Bucket=s3_bucket, Key=listed["Contents"][0]["Key"])["Body"].read()
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert {row["tenant_id"] for row in rows} == {str(dataset.tenant.pk)}
