"""The Monitoring page's charts: which stored figures each one draws, downsampled for a window.

The result is plain data for `json_script` (monitoring/static/monitoring/monitoring.js draws
it): the buckets' labels, shared by every chart, and per chart its datasets, one value or None
(no sample: a gap) per bucket.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from clickhouse_connect.driver.client import Client
from django.conf import settings

from monitoring import downsample
from monitoring.downsample import Window


def connections_warning_ratio() -> float:
    """The high-connections alert's line (the spec's 80 %, ALERT_DB_CONNECTIONS_PERCENT)."""
    return settings.ALERT_DB_CONNECTIONS_PERCENT / 100


LATENCY_TOP_VIEWS = 8  # the busiest views get a line each; more would be unreadable
REQUEST_SUM = "metis_http_request_duration_seconds_sum"
REQUEST_COUNT = "metis_http_request_duration_seconds_count"


def _round(value: float) -> float:
    return float(f"{value:.6g}")  # six significant digits: a cost of $0.00002 stays


def _values(points: dict[datetime.datetime, float], buckets: list[datetime.datetime]) -> list:
    return [None if points.get(b) is None else _round(points[b]) for b in buckets]


def _dataset(label: str, values: list, **options) -> dict:
    return {"label": label, "data": values, **options}


def _chart(chart_id: str, title: str, unit: str, datasets: list[dict], **options) -> dict:
    return {"id": chart_id, "title": title, "unit": unit, "datasets": datasets, **options}


def _split(
    found: dict, name: str, buckets: list[datetime.datetime], pick=lambda point: point
) -> Iterable[tuple[str, list]]:
    """Yield (label value, values per bucket) of metric `name`, ordered by label value."""
    for (found_name, series), points in sorted(found.items()):
        if found_name == name:
            yield series, _values({b: pick(p) for b, p in points.items()}, buckets)


def _mean(point: tuple[float, float]) -> float:
    return point[0]


def _peak(point: tuple[float, float]) -> float:
    return point[1]


def _database(client: Client, span: dict, buckets: list) -> list[dict]:
    found = downsample.gauges(
        client,
        [
            "metis_db_connections",
            "metis_db_connections_max",
            "metis_db_slow_queries",
            "metis_db_lock_waits",
            "metis_db_size_bytes",
        ],
        **span,
    )

    def line(name: str, pick=_peak) -> list:
        points = found.get((name, ""), {})
        return _values({b: pick(p) for b, p in points.items()}, buckets)

    limit = line("metis_db_connections_max")
    warning = [None if v is None else v * connections_warning_ratio() for v in limit]
    return [
        _chart(
            "db-connections",
            "Database connections: used vs max",
            "count",
            [
                _dataset("used (peak)", line("metis_db_connections")),
                _dataset("used (mean)", line("metis_db_connections", _mean)),
                _dataset("max_connections", limit),
                _dataset(f"{connections_warning_ratio():.0%} of max (alert)", warning, dashed=True),
            ],
        ),
        _chart(
            "db-slow-locks",
            f"Slow queries (> {settings.ALERT_DB_SLOW_QUERY_SECONDS:g} s) and lock waits (peak)",
            "count",
            [
                _dataset("slow queries", line("metis_db_slow_queries")),
                _dataset("lock waits", line("metis_db_lock_waits")),
            ],
        ),
        _chart(
            "db-size",
            "Database size",
            "bytes",
            [_dataset("database size", line("metis_db_size_bytes"))],
        ),
    ]


def _storage(client: Client, span: dict, buckets: list) -> list[dict]:
    by_tenant = downsample.gauges(
        client,
        ["metis_s3_stored_bytes", "metis_s3_estimated_monthly_cost_usd"],
        by="tenant",
        **span,
    )
    by_tier = downsample.gauges(client, ["metis_s3_stored_bytes"], by="tier", **span)
    return [
        _chart(
            "s3-bytes-tenant",
            "S3 bytes per tenant",
            "bytes",
            [_dataset(t, v) for t, v in _split(by_tenant, "metis_s3_stored_bytes", buckets, _mean)],
            stacked=True,
        ),
        _chart(
            "s3-bytes-tier",
            "S3 bytes per storage tier",
            "bytes",
            [_dataset(t, v) for t, v in _split(by_tier, "metis_s3_stored_bytes", buckets, _mean)],
            stacked=True,
        ),
        _chart(
            "s3-cost-tenant",
            "Estimated monthly storage cost per tenant",
            "usd",
            [
                _dataset(t, v)
                for t, v in _split(by_tenant, "metis_s3_estimated_monthly_cost_usd", buckets, _mean)
            ],
            stacked=True,
        ),
    ]


def _per_minute(values: list, step: datetime.timedelta) -> list:
    minutes = step.total_seconds() / 60
    return [None if v is None else _round(v / minutes) for v in values]


def _s3_requests(client: Client, span: dict, buckets: list) -> list[dict]:
    names = ["metis_s3_requests_total", "metis_s3_errors_total"]
    found = downsample.increases(client, names, by="operation", **span)
    step = span["step"]

    def rates(name: str) -> list[dict]:
        return [_dataset(op, _per_minute(v, step)) for op, v in _split(found, name, buckets)]

    return [
        _chart("s3-requests", "S3 requests per minute, by operation", "rate", rates(names[0])),
        _chart("s3-errors", "S3 errors per minute, by operation", "rate", rates(names[1])),
    ]


def _outbox_and_backups(client: Client, span: dict, buckets: list) -> list[dict]:
    names = [
        "metis_outbox_pending_events",
        "metis_outbox_oldest_pending_age_seconds",
        "metis_backup_last_good_age_seconds",
        "metis_backup_wal_archive_age_seconds",
    ]
    found = downsample.gauges(client, names, **span)

    def peak(name: str) -> list:
        return _values({b: p[1] for b, p in found.get((name, ""), {}).items()}, buckets)

    return [
        _chart(
            "outbox",
            "Outbox: events waiting and the oldest one's age (peak)",
            "count",
            [
                _dataset("events waiting", peak(names[0])),
                _dataset("oldest age", peak(names[1]), axis="y2"),
            ],
            unit2="seconds",
        ),
        _chart(
            "backup-age",
            "Age of the last good backup and of the WAL archive (peak)",
            "seconds",
            [
                _dataset("last good backup", peak(names[2])),
                _dataset("WAL archive", peak(names[3])),
            ],
        ),
    ]


def _celery(client: Client, span: dict, buckets: list) -> list[dict]:
    depth = downsample.gauges(client, ["metis_celery_queue_length"], by="queue", **span)
    failures = downsample.increases(client, ["metis_celery_task_failures_total"], by="task", **span)
    return [
        _chart(
            "celery-queues",
            "Celery queue depth (peak)",
            "count",
            [_dataset(q, v) for q, v in _split(depth, "metis_celery_queue_length", buckets, _peak)],
        ),
        _chart(
            "celery-failures",
            "Celery task failures per bucket, by task",
            "count",
            [
                _dataset(t, v)
                for t, v in _split(failures, "metis_celery_task_failures_total", buckets)
            ],
            stacked=True,
            bar=True,
        ),
    ]


def _latency(client: Client, span: dict, buckets: list) -> list[dict]:
    found = downsample.increases(client, [REQUEST_SUM, REQUEST_COUNT], by="view", **span)
    counts = {series: points for (name, series), points in found.items() if name == REQUEST_COUNT}
    busiest = sorted(counts, key=lambda view: (-sum(counts[view].values()), view))
    datasets = []
    for view in sorted(busiest[:LATENCY_TOP_VIEWS]):
        seconds = found.get((REQUEST_SUM, view), {})
        mean = {b: seconds.get(b, 0.0) / n for b, n in counts[view].items() if n > 0}
        datasets.append(_dataset(view, _values(mean, buckets)))
    title = f"Mean request latency by view (the {LATENCY_TOP_VIEWS} busiest)"
    return [_chart("latency", title, "seconds", datasets)]


def charts(client: Client, *, window: Window, now: datetime.datetime) -> dict:
    """Return {"labels": bucket labels, "step_seconds", "charts": [...]} for `window`."""
    buckets = window.buckets(now)
    span = {"start": buckets[0], "end": buckets[-1] + window.step, "step": window.step}
    sections = (_database, _storage, _s3_requests, _outbox_and_backups, _celery, _latency)
    return {
        "window": window.key,
        "step_seconds": int(window.step.total_seconds()),
        "labels": [b.strftime("%Y-%m-%d %H:%M") for b in buckets],
        "charts": [chart for section in sections for chart in section(client, span, buckets)],
    }
