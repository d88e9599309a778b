"""Downsampling in ClickHouse: counters' increases across a reset, latency means, gauges' peaks."""

from __future__ import annotations

import datetime

import pytest

from analytics import clickhouse
from monitoring import charts, downsample, services

T0 = datetime.datetime(2026, 3, 2, 10, 0, tzinfo=datetime.UTC)


def minute(n: int) -> datetime.datetime:
    return T0 + datetime.timedelta(minutes=n)


def store(rows: list[tuple[int, str, dict, float]]) -> None:
    """Write (minute, name, labels, value) rows as the sample task does (monitoring.services)."""
    with clickhouse.session() as client:
        client.insert(
            "metrics",
            [[minute(n), name, labels, value] for n, name, labels, value in rows],
            column_names=services.COLUMNS,
        )


@pytest.fixture
def counters(clickhouse_db):
    gets = {"operation": "GetObject"}
    # GetObject: +5, +5, then a deploy empties the files (7 is an increase of 7), +1.
    # Two processes' totals arrive summed (one series); a second operation is its own series.
    store(
        [
            (n, "metis_s3_requests_total", gets, value)
            for n, value in enumerate([100, 105, 110, 7, 8])
        ]
        + [(n, "metis_s3_requests_total", {"operation": "PutObject"}, 3) for n in range(5)]
        + [(n, "metis_s3_errors_total", {**gets, "code": "NoSuchKey"}, n) for n in range(5)]
        + [(n, "metis_s3_errors_total", {**gets, "code": "SlowDown"}, 2 * n) for n in range(5)]
    )


def test_increases_count_from_zero_after_a_reset(counters):
    with clickhouse.session() as client:
        found = downsample.increases(
            client,
            ["metis_s3_requests_total"],
            start=minute(0),
            end=minute(5),
            step=datetime.timedelta(minutes=1),
            by="operation",
        )
    assert found[("metis_s3_requests_total", "GetObject")] == {
        minute(0): 0.0,  # the first sample is the baseline
        minute(1): 5.0,
        minute(2): 5.0,
        minute(3): 7.0,
        minute(4): 1.0,
    }
    assert set(found[("metis_s3_requests_total", "PutObject")].values()) == {0.0}


def test_increases_sum_the_labels_not_split_by_and_measure_from_before_the_window(counters):
    with clickhouse.session() as client:
        found = downsample.increases(
            client,
            ["metis_s3_errors_total"],
            start=minute(2),  # the increase into minute 2 is measured from minute 1's sample
            end=minute(5),
            step=None,
            by="operation",
        )
    # NoSuchKey 1+1+1 and SlowDown 2+2+2, in one bucket keyed by the start.
    assert found == {("metis_s3_errors_total", "GetObject"): {minute(2): 9.0}}


def test_the_rate_chart_is_per_minute_of_each_bucket(counters):
    window = downsample.Window(
        "t", "test", datetime.timedelta(minutes=10), datetime.timedelta(minutes=5)
    )
    with clickhouse.session() as client:
        data = charts.charts(client, window=window, now=minute(9))
    (requests,) = [c for c in data["charts"] if c["id"] == "s3-requests"]
    assert data["labels"] == ["2026-03-02 10:00", "2026-03-02 10:05"]
    (gets,) = [d["data"] for d in requests["datasets"] if d["label"] == "GetObject"]
    assert gets == [(0 + 5 + 5 + 7 + 1) / 5, None]


def test_latency_is_the_increase_of_the_sum_over_that_of_the_count(clickhouse_db):
    home = {"view": "tenants:home", "method": "GET", "status": "2xx"}
    home_post = {**home, "method": "POST"}
    store(
        [
            (0, charts.REQUEST_COUNT, home, 10),
            (0, charts.REQUEST_SUM, home, 1.0),
            (1, charts.REQUEST_COUNT, home, 14),
            (1, charts.REQUEST_SUM, home, 1.8),
            (0, charts.REQUEST_COUNT, home_post, 1),
            (0, charts.REQUEST_SUM, home_post, 0.5),
            (1, charts.REQUEST_COUNT, home_post, 2),
            (1, charts.REQUEST_SUM, home_post, 1.5),
        ]
    )
    window = downsample.Window(
        "t", "test", datetime.timedelta(minutes=2), datetime.timedelta(minutes=1)
    )
    with clickhouse.session() as client:
        data = charts.charts(client, window=window, now=minute(1))
    (latency,) = [c for c in data["charts"] if c["id"] == "latency"]
    (home_line,) = latency["datasets"]
    assert home_line["label"] == "tenants:home"
    # Minute 1: GET 4 requests in 0.8 s and POST 1 in 1.0 s: 1.8 s over 5 requests.
    assert home_line["data"] == [None, pytest.approx(0.36)]


def test_gauges_fold_into_means_and_peaks(clickhouse_db):
    store(
        [(n, "metis_db_connections", {"state": "idle"}, 4) for n in range(4)]
        + [(n, "metis_db_connections", {"state": "active"}, v) for n, v in enumerate([1, 9, 2, 2])]
    )
    with clickhouse.session() as client:
        found = downsample.gauges(
            client,
            ["metis_db_connections"],
            start=minute(0),
            end=minute(4),
            step=datetime.timedelta(minutes=2),
        )
    # Per minute: 5, 13, 6, 6 connections (the states summed), then per two minutes.
    assert found == {("metis_db_connections", ""): {minute(0): (9.0, 13.0), minute(2): (6.0, 6.0)}}


def test_windows_end_in_the_bucket_holding_now():
    window = downsample.WINDOWS["30d"]
    buckets = window.buckets(datetime.datetime(2026, 3, 2, 10, 59, tzinfo=datetime.UTC))
    assert len(buckets) == 360
    assert buckets[-1] == datetime.datetime(2026, 3, 2, 10, 0, tzinfo=datetime.UTC)
    assert buckets[0] == buckets[-1] - datetime.timedelta(hours=2 * 359)
