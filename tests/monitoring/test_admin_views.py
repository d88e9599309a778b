"""The admin Monitoring page: real samples in ClickHouse, downsampled into the charts' JSON."""

from __future__ import annotations

import datetime
import json
import re

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from analytics import clickhouse
from monitoring import services
from tests.documents.conftest import pdf_bytes, upload
from tests.support import ports
from tests.support import staff as support_staff

pytestmark = pytest.mark.committed

PAGE = "/admin/monitoring/"


def payload(response) -> dict:
    """The charts' data, as the page hands it to monitoring.js (json_script)."""
    found = re.search(
        rb'<script id="monitoring-data" type="application/json">(.*?)</script>',
        response.content,
        re.S,
    )
    assert found, response.content[:2000]
    return json.loads(found.group(1))


def chart(data: dict, chart_id: str) -> dict:
    (found,) = [c for c in data["charts"] if c["id"] == chart_id]
    return found


def dataset(found: dict, label: str) -> list:
    (values,) = [d["data"] for d in found["datasets"] if d["label"] == label]
    return values


def label(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


@pytest.fixture
def five_minutes(clickhouse_db, s3_bucket, tenant, other_tenant):
    """Samples of five past minutes, all in one 5-minute bucket: acme's 1009 bytes for the first
    two, globex's 1209 bytes more for the last three; then one sample of the current minute."""
    now = timezone.now()
    base = now.replace(minute=now.minute // 5 * 5, second=0, microsecond=0)
    base -= datetime.timedelta(minutes=5)
    upload(tenant, pdf_bytes(size=1009))
    minutes = [base + datetime.timedelta(minutes=n) for n in range(5)]
    for moment in minutes[:2]:
        services.metrics_sample_record(now=moment)
    upload(other_tenant, pdf_bytes(size=1209))
    for moment in minutes[2:]:
        services.metrics_sample_record(now=moment)
    services.metrics_sample_record(now=now)
    return minutes


def test_the_page_charts_each_minute_in_the_hour_window(staff_client, five_minutes):
    response = staff_client.get(PAGE, {"window": "1h"})
    assert response.status_code == 200
    data = payload(response)
    assert data["step_seconds"] == 60
    assert len(data["labels"]) == 60
    by_tenant = chart(data, "s3-bytes-tenant")
    assert by_tenant["stacked"] is True
    acme, globex = dataset(by_tenant, "acme"), dataset(by_tenant, "globex")
    at = {label(m): data["labels"].index(label(m)) for m in five_minutes}
    assert [acme[at[label(m)]] for m in five_minutes] == [1009.0] * 5
    assert [globex[at[label(m)]] for m in five_minutes] == [None, None, 1209.0, 1209.0, 1209.0]
    # A minute without a sample is a gap, not a zero.
    before = at[label(five_minutes[0])] - 1
    assert acme[before] is None
    tier = dataset(chart(data, "s3-bytes-tier"), "STANDARD")
    assert tier[at[label(five_minutes[4])]] == 2218.0
    cost = dataset(chart(data, "s3-cost-tenant"), "globex")
    assert cost[at[label(five_minutes[4])]] == pytest.approx(1209 / 2**30 * 0.023, rel=1e-5)


def test_the_day_window_folds_the_minutes_into_five_minute_means(staff_client, five_minutes):
    data = payload(staff_client.get(PAGE, {"window": "24h"}))
    assert data["step_seconds"] == 300
    assert len(data["labels"]) == 288
    bucket = data["labels"].index(label(five_minutes[0]))
    tier = dataset(chart(data, "s3-bytes-tier"), "STANDARD")
    assert tier[bucket] == pytest.approx((2 * 1009 + 3 * 2218) / 5)
    # Connections: the peak of the used ones never exceeds the server's maximum, which is flat.
    connections = chart(data, "db-connections")
    limit = dataset(connections, "max_connections")[bucket]
    with clickhouse.session() as client:
        (stored,) = client.query(
            "SELECT DISTINCT value FROM metrics WHERE name = 'metis_db_connections_max'"
        ).result_rows
    assert limit == stored[0]
    assert dataset(connections, "80% of max (alert)")[bucket] == pytest.approx(limit * 0.8)
    assert 0 < dataset(connections, "used (peak)")[bucket] <= limit


@pytest.mark.parametrize("window,points", [("7d", 336), ("30d", 360)])
def test_long_windows_are_a_few_hundred_points(staff_client, five_minutes, window, points):
    data = payload(staff_client.get(PAGE, {"window": window}))
    assert len(data["labels"]) == points
    stored = [v for v in dataset(chart(data, "s3-bytes-tier"), "STANDARD") if v is not None]
    assert len(stored) in (1, 2)  # the five minutes (and the current one) in one or two buckets


def test_the_tiles_show_the_latest_sample(staff_client, five_minutes):
    response = staff_client.get(PAGE)
    html = response.content.decode()
    assert 'data-tile="S3 stored"' in html
    assert "2.2 KB" in html  # 2218 bytes, both tenants
    assert re.search(r'data-tile="Database connections" data-ok="true"', html)
    # No backup was ever verified here: that tile is red.
    assert re.search(r'data-tile="Last good backup" data-ok="false"', html)
    assert "No open alerts." in html


def test_the_page_says_so_without_a_recent_sample(staff_client, clickhouse_db):
    response = staff_client.get(PAGE)
    assert response.status_code == 200
    assert b'id="monitoring-stale"' in response.content


def test_an_unknown_window_is_a_400(staff_client, clickhouse_db):
    assert staff_client.get(PAGE, {"window": "5y"}).status_code == 400


def test_the_page_is_a_503_with_a_message_when_clickhouse_is_down(staff_client, settings):
    # A port nothing listens on (free_port: bound, then released).
    settings.CLICKHOUSE_URL = f"http://default:@127.0.0.1:{ports.free_port()}/metis"
    response = staff_client.get(PAGE)
    assert response.status_code == 503
    assert b"ClickHouse cannot be reached" in response.content
    assert b'id="monitoring-data"' not in response.content


def test_a_tenant_user_never_reaches_the_page(tenant_client, tenant):
    # On the tenant's host there is no admin at all; on the staff host the session is no staff's.
    assert tenant_client.get(PAGE).status_code == 404
    staff_host = Client(HTTP_HOST=settings.METIS_BASE_DOMAIN)
    staff_host.cookies = tenant_client.cookies
    response = staff_host.get(PAGE)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_staff_without_a_second_factor_are_sent_to_sign_in(staff_user):
    client = Client(HTTP_HOST=settings.METIS_BASE_DOMAIN)
    client.force_login(staff_user)  # the password step only: no device in the session
    response = client.get(PAGE)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    support_staff.mark_verified(client, staff_user)
    assert client.get(PAGE).status_code in (200, 503)  # in now (ClickHouse aside)


def test_the_nav_bar_links_the_page(staff_client, clickhouse_db):
    response = staff_client.get("/admin/")
    assert f'href="{PAGE}"'.encode() in response.content


def test_the_page_lists_the_open_alerts_and_links_each(staff_client, clickhouse_db, settings):
    from backups.models import BackupRun
    from monitoring.alerts import services as alert_services

    settings.ALERT_EMAILS, settings.ALERT_WEBHOOK_URL = [], ""
    BackupRun.objects.create(kind="full", status="failed", error="disk full")
    (alert,) = alert_services.alerts_evaluate(only=["backup_failed"]).opened
    response = staff_client.get(PAGE)
    assert response.status_code == 200
    assert b'data-alert="backup_failed:full"' in response.content
    assert f"/admin/monitoring/alert/{alert.pk}/change/".encode() in response.content
    assert b"disk full" in response.content and b"No open alerts." not in response.content
