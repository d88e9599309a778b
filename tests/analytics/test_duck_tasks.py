"""The DuckDB beat jobs: scheduled by migration, and the weekly job writes every report."""

from __future__ import annotations

import datetime as dt

import pytest
from django_celery_beat.models import PeriodicTask

from analytics import duck_tasks, exports, reports
from metis.celery import app
from metis.objectstore import store

# The jobs read through the staff read role's own connection: data must be committed.
pytestmark = pytest.mark.committed


def test_daily_export_and_weekly_reports_are_scheduled_and_editable(db):
    tasks = {task.task: task for task in PeriodicTask.objects.all()}
    assert tasks["analytics.export_parquet"].crontab.hour == "2"
    assert tasks["analytics.usage_reports_weekly"].crontab.day_of_week == "1"
    assert tasks["analytics.export_parquet"].enabled


def test_celery_registers_the_duckdb_tasks():
    app.loader.import_default_modules()
    for name in (
        "analytics.export_parquet",
        "analytics.usage_reports_weekly",
        "analytics.usage_report_for_tenant",
    ):
        assert name in app.tasks


def test_export_task_points_latest_at_its_run(dataset, s3_bucket):
    run_id = duck_tasks.export_parquet.apply().get()
    assert exports.latest_export()["run_id"] == run_id


def test_weekly_task_queues_one_report_per_active_tenant(
    dataset, s3_bucket, django_capture_on_commit_callbacks
):
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True  # the per-tenant tasks run here, not on a worker
    try:
        with django_capture_on_commit_callbacks(execute=True):
            duck_tasks.usage_reports_weekly.apply(kwargs={"today": "2026-11-30"}).get()
    finally:
        app.conf.task_always_eager = eager
    week = reports.ReportWeek.last_complete(dt.date(2026, 11, 30))
    for tenant in (dataset.tenant, dataset.other_tenant):
        report = store.documents_store().read_bytes(reports.usage_report_key(tenant.pk, week))
        assert report is not None
        assert str(tenant.pk) in report.decode()


def test_report_task_refuses_an_export_that_never_completed(dataset, s3_bucket):
    with pytest.raises(RuntimeError, match="did not complete"):
        duck_tasks.usage_report_for_tenant.apply(
            kwargs={"tenant_id": str(dataset.tenant.pk), "run_id": "nope", "week_day": "2026-11-23"}
        ).get()
