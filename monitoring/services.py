"""Store the current figures in ClickHouse's `metrics` table: the history the admin charts."""

from __future__ import annotations

import datetime

from django.utils import timezone

from analytics import clickhouse
from monitoring import exposition

COLUMNS = ["timestamp", "name", "labels", "value"]
# Histogram buckets would be a dozen rows per series per minute; count and sum suffice for
# rates and means. `_created` is no figure.
_SKIPPED_SUFFIXES = ("_bucket", "_created")


def metrics_rows(moment: datetime.datetime) -> list[list]:
    """Return one [timestamp, name, labels, value] row per sample of every metric now."""
    return [
        [moment, sample.name, dict(sample.labels), float(sample.value)]
        for family in exposition.registry().collect()
        for sample in family.samples
        if not sample.name.endswith(_SKIPPED_SUFFIXES)
    ]


def metrics_sample_record(*, now: datetime.datetime | None = None) -> int:
    """Write this minute's samples to ClickHouse; return the number of rows.

    Idempotent within a minute: the rows carry the minute as their insert deduplication token,
    so a second run in the same minute (a redelivered task) adds nothing.
    """
    moment = (now or timezone.now()).replace(second=0, microsecond=0)
    rows = metrics_rows(moment)
    if not rows:
        return 0
    with clickhouse.session() as client:
        client.insert(
            "metrics",
            rows,
            column_names=COLUMNS,
            settings={"insert_deduplication_token": f"metrics:{moment.isoformat()}"},
        )
    return len(rows)
