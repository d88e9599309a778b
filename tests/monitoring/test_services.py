from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from monitoring import queries, services, tasks
from tests.analytics.conftest import clickhouse_rows
from tests.documents.conftest import pdf_bytes, upload

pytestmark = pytest.mark.committed


def test_the_beat_task_writes_samples_and_the_series_come_back(
    clickhouse_db,
    s3_bucket,
    tenant,
    other_tenant,
):
    upload(tenant, pdf_bytes(size=1009))
    upload(other_tenant, pdf_bytes(size=1209))
    before = timezone.now()
    written = tasks.record_metrics_sample.apply().get()
    after = timezone.now()
    assert written > 10
    assert clickhouse_rows("SELECT count() FROM metrics")[0][0] == written
    # Buckets stay out; counts and sums of the histogram stay in.
    assert clickhouse_rows("SELECT count() FROM metrics WHERE name LIKE '%_bucket'")[0][0] == 0

    now = timezone.now()
    found = queries.series(
        "metis_s3_stored_bytes",
        start=now - datetime.timedelta(minutes=5),
        end=now + datetime.timedelta(minutes=1),
    )
    assert [(s.labels, [v for _, v in s.points]) for s in found] == [
        ({"tenant": "acme", "tier": "STANDARD"}, [1009.0]),
        ({"tenant": "globex", "tier": "STANDARD"}, [1209.0]),
    ]
    (only_globex,) = queries.series(
        "metis_s3_stored_bytes",
        start=now - datetime.timedelta(minutes=5),
        end=now + datetime.timedelta(minutes=1),
        labels={"tenant": "globex"},
    )
    assert only_globex.labels == {"tenant": "globex", "tier": "STANDARD"}
    # The sample is stamped with the minute the task ran in, which may have turned meanwhile.
    ran_in = {t.replace(second=0, microsecond=0, tzinfo=None) for t in (before, after)}
    assert only_globex.points[0][0] in ran_in
    later = queries.series(
        "metis_s3_stored_bytes",
        start=now + datetime.timedelta(minutes=1),
        end=now + datetime.timedelta(hours=1),
    )
    assert later == []


def test_a_second_run_in_the_same_minute_adds_nothing(clickhouse_db, tenant_db):
    moment = timezone.now()
    first = services.metrics_sample_record(now=moment)
    assert first > 0
    services.metrics_sample_record(now=moment + datetime.timedelta(seconds=1))
    assert clickhouse_rows("SELECT count() FROM metrics")[0][0] == first
    services.metrics_sample_record(now=moment + datetime.timedelta(minutes=1))
    assert clickhouse_rows("SELECT count() FROM metrics")[0][0] > first


def test_the_sample_task_is_scheduled_every_minute(tenant_db):
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(task="monitoring.record_metrics_sample")
    assert task.enabled
    assert (task.crontab.minute, task.crontab.hour) == ("*", "*")
