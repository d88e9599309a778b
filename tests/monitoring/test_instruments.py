from __future__ import annotations

import uuid

import pytest
from botocore.exceptions import ClientError
from celery import shared_task
from django.test import Client

from metis.objectstore import store
from tests.monitoring.conftest import counted


@shared_task(name="tests.monitoring.always_fails")
def always_fails() -> None:
    raise RuntimeError("this task fails on purpose")


def test_a_get_of_a_missing_key_counts_a_request_and_an_error(s3_bucket):
    requests_before = counted("metis_s3_requests_total", operation="GetObject")
    errors_before = counted("metis_s3_errors_total", operation="GetObject", code="NoSuchKey")
    assert store.documents_store().read_bytes(f"missing/{uuid.uuid4()}") is None
    assert counted("metis_s3_requests_total", operation="GetObject") == requests_before + 1
    assert (
        counted("metis_s3_errors_total", operation="GetObject", code="NoSuchKey")
        == errors_before + 1
    )


def test_a_successful_call_counts_a_request_and_no_error(s3_bucket):
    errors_before = sum(
        counted("metis_s3_errors_total", operation="PutObject", code=code)
        for code in ("NoSuchBucket", "AccessDenied", "500")
    )
    requests_before = counted("metis_s3_requests_total", operation="PutObject")
    store.documents_store().client.put_object(Bucket=s3_bucket, Key="k", Body=b"x")
    assert counted("metis_s3_requests_total", operation="PutObject") == requests_before + 1
    assert errors_before == sum(
        counted("metis_s3_errors_total", operation="PutObject", code=code)
        for code in ("NoSuchBucket", "AccessDenied", "500")
    )


def test_a_bad_bucket_counts_an_error_by_operation(s3_bucket):
    bucket = f"no-such-bucket-{uuid.uuid4().hex[:8]}"
    before = counted("metis_s3_errors_total", operation="ListObjectsV2", code="NoSuchBucket")
    with pytest.raises(ClientError):
        store.documents_store().client.list_objects_v2(Bucket=bucket)
    after = counted("metis_s3_errors_total", operation="ListObjectsV2", code="NoSuchBucket")
    assert after == before + 1


def test_a_failed_task_counts():
    before = counted("metis_celery_task_failures_total", task="tests.monitoring.always_fails")
    result = always_fails.apply()
    assert result.failed()
    assert (
        counted("metis_celery_task_failures_total", task="tests.monitoring.always_fails")
        == before + 1
    )


@pytest.mark.committed
def test_a_request_shows_in_the_latency_histogram_by_view(tenant_client, settings):
    settings.METRICS_TOKEN = "t"
    labels = {"view": "metrics", "method": "GET", "status": "2xx"}
    before = counted("metis_http_request_duration_seconds_count", **labels)
    staff = Client(HTTP_HOST=settings.METIS_BASE_DOMAIN)
    assert staff.get("/metrics", headers={"Authorization": "Bearer t"}).status_code == 200
    assert counted("metis_http_request_duration_seconds_count", **labels) == before + 1
    assert counted("metis_http_request_duration_seconds_sum", **labels) > 0

    missing = {"view": "<unresolved>", "method": "GET", "status": "4xx"}
    before_missing = counted("metis_http_request_duration_seconds_count", **missing)
    assert tenant_client.get(f"/no-such-page-{uuid.uuid4()}/").status_code == 404
    assert counted("metis_http_request_duration_seconds_count", **missing) == before_missing + 1


def test_the_method_label_is_not_the_clients_to_choose(tenant_db, settings):
    settings.METRICS_TOKEN = "t"
    staff = Client(HTTP_HOST=settings.METIS_BASE_DOMAIN)
    staff.generic("BREW", "/metrics")
    assert not counted(
        "metis_http_request_duration_seconds_count", view="metrics", method="BREW", status="4xx"
    )
    assert (
        counted(
            "metis_http_request_duration_seconds_count",
            view="metrics",
            method="other",
            status="4xx",
        )
        >= 1
    )
