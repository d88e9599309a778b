"""The Monitoring page's tiles: each figure's latest stored value and whether it is within its
threshold (green), past it (red), or has none (grey: shown for reading, not judged).

Where an alert rule watches the same figure, the tile uses the rule's threshold (the ALERT_*
settings), so a red tile and an open alert agree; the others are named judgements below. The
alert rules own the notifications; these only colour the page.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client
from django.conf import settings

from monitoring import downsample
from monitoring.charts import REQUEST_COUNT, REQUEST_SUM, connections_warning_ratio

# A sample older than this is no "current value": beat or the worker has stopped.
SAMPLE_FRESH = datetime.timedelta(minutes=5)
COUNTER_SPAN = datetime.timedelta(hours=1)  # the span of the "last hour" tiles
LOCK_WAITS_MAX = 5  # a few short waits are normal; a queue of them is contention
WAL_ARCHIVE_MAX_SECONDS = 2 * 3600  # checked hourly (backups/dashboard.py)
S3_ERROR_RATIO_MAX = 0.01
LATENCY_MEAN_MAX_SECONDS = 0.5


@dataclass(frozen=True)
class Tile:
    name: str
    value: str
    ok: bool | None  # None: no threshold, or no figure to judge
    target: str


def _bytes(n: float) -> str:
    units = ["B", "KB", "MB", "GB", "TB"]
    index = 0
    while n >= 1024 and index < len(units) - 1:
        n /= 1024
        index += 1
    return f"{n:.1f} {units[index]}" if index else f"{n:.0f} B"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class _Latest:
    """The latest sampling minute's figures, summed over their labels."""

    def __init__(self, samples: list[downsample.Sample]) -> None:
        self.samples = samples

    def total(self, name: str) -> float | None:
        values = [s.value for s in self.samples if s.name == name]
        return sum(values) if values else None

    def by(self, name: str, label: str) -> dict[str, float]:
        return {s.labels.get(label, ""): s.value for s in self.samples if s.name == name}


def _at_most(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def _sampled_tiles(latest: _Latest) -> list[Tile]:
    used, limit = latest.total("metis_db_connections"), latest.total("metis_db_connections_max")
    slow, locks = latest.total("metis_db_slow_queries"), latest.total("metis_db_lock_waits")
    size = latest.total("metis_db_size_bytes")
    stored = latest.total("metis_s3_stored_bytes")
    cost = latest.total("metis_s3_estimated_monthly_cost_usd")
    waiting = latest.total("metis_outbox_pending_events")
    oldest = latest.total("metis_outbox_oldest_pending_age_seconds")
    backup = latest.total("metis_backup_last_good_age_seconds")
    archive = latest.total("metis_backup_wal_archive_age_seconds")
    queues = latest.by("metis_celery_queue_length", "queue")
    down = sorted(k for k, v in latest.by("metis_collector_up", "section").items() if not v)
    deepest = max(queues.items(), key=lambda item: item[1], default=None)
    return [
        Tile(
            "Database connections",
            "—" if used is None or limit is None else f"{used:.0f} of {limit:.0f}",
            None if used is None or limit is None else used <= limit * connections_warning_ratio(),
            f"≤ {connections_warning_ratio():.0%} of max_connections",
        ),
        Tile(
            "Slow queries",
            "—" if slow is None else f"{slow:.0f}",
            _at_most(slow, 0),
            f"none running > {settings.ALERT_DB_SLOW_QUERY_SECONDS:g} s",
        ),
        Tile(
            "Lock waits",
            "—" if locks is None else f"{locks:.0f}",
            _at_most(locks, LOCK_WAITS_MAX),
            f"≤ {LOCK_WAITS_MAX}",
        ),
        Tile("Database size", "—" if size is None else _bytes(size), None, "no threshold"),
        Tile("S3 stored", "—" if stored is None else _bytes(stored), None, "all tenants"),
        Tile(
            "Estimated storage cost",
            "—" if cost is None else f"${cost:,.2f}/month",
            None,
            "all tenants",
        ),
        Tile(
            "Outbox",
            "—" if oldest is None else f"{waiting or 0:.0f} waiting, oldest {_duration(oldest)}",
            _at_most(oldest, settings.ALERT_OUTBOX_OLDEST_SECONDS),
            f"oldest ≤ {_duration(settings.ALERT_OUTBOX_OLDEST_SECONDS)}",
        ),
        Tile(
            "Last good backup",
            "none yet" if backup is None else f"{_duration(backup)} ago",
            backup is not None and backup <= settings.ALERT_BACKUP_MAX_AGE_HOURS * 3600,
            f"≤ {_duration(settings.ALERT_BACKUP_MAX_AGE_HOURS * 3600)} old",
        ),
        Tile(
            "WAL archive",
            "never checked" if archive is None else f"{_duration(archive)} ago",
            archive is not None and archive <= WAL_ARCHIVE_MAX_SECONDS,
            f"≤ {_duration(WAL_ARCHIVE_MAX_SECONDS)} old",
        ),
        Tile(
            "Celery queues",
            "—" if deepest is None else f"{deepest[1]:.0f} in {deepest[0]}",
            None if deepest is None else deepest[1] <= settings.ALERT_CELERY_QUEUE_MAX,
            f"each ≤ {settings.ALERT_CELERY_QUEUE_MAX} waiting",
        ),
        Tile(
            "Collectors",
            "all read" if not down else "not read: " + ", ".join(down),
            not down,
            "every section read",
        ),
    ]


def _hour_tiles(client: Client, now: datetime.datetime) -> list[Tile]:
    found = downsample.increases(
        client,
        [
            "metis_s3_requests_total",
            "metis_s3_errors_total",
            "metis_celery_task_failures_total",
            REQUEST_SUM,
            REQUEST_COUNT,
        ],
        start=now - COUNTER_SPAN,
        end=now,
        step=None,
    )

    def total(name: str) -> float:
        return sum(found.get((name, ""), {}).values())

    requests, errors = total("metis_s3_requests_total"), total("metis_s3_errors_total")
    failures = total("metis_celery_task_failures_total")
    answered, seconds = total(REQUEST_COUNT), total(REQUEST_SUM)
    ratio = errors / requests if requests else 0.0
    mean = seconds / answered if answered else None
    return [
        Tile(
            "S3 errors (last hour)",
            f"{errors:.0f} of {requests:.0f} calls",
            ratio <= S3_ERROR_RATIO_MAX,
            f"≤ {S3_ERROR_RATIO_MAX:.0%} of calls",
        ),
        Tile("Task failures (last hour)", f"{failures:.0f}", failures == 0, "none after retries"),
        Tile(
            "Request latency (last hour)",
            "no requests" if mean is None else f"{mean * 1000:.0f} ms mean",
            _at_most(mean, LATENCY_MEAN_MAX_SECONDS),
            f"mean ≤ {LATENCY_MEAN_MAX_SECONDS * 1000:.0f} ms",
        ),
    ]


def tiles(client: Client, *, now: datetime.datetime) -> tuple[datetime.datetime | None, list[Tile]]:
    """Return the latest sampling minute (None: none in SAMPLE_FRESH) and the tiles."""
    sampled_at, samples = downsample.latest(client, now=now, within=SAMPLE_FRESH)
    if sampled_at is None:
        return None, []
    return sampled_at, _sampled_tiles(_Latest(samples)) + _hour_tiles(client, now)
