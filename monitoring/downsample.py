"""Downsampled reads of the stored samples (the `metrics` table) for the Monitoring page.

A chart of 30 days holds 43,200 samples per series; ClickHouse folds them into a few hundred
buckets before anything leaves it: gauges as the mean and the peak of each bucket, counters as
the increase within each bucket. Counters restart from zero when the multiprocess files are
emptied at a deploy (docs/operations.md, "Metrics"): a sample below the one before it counts
from zero, as Prometheus's `increase()` does. A series' first sample is its baseline.

Every function takes the client of one `clickhouse.session()`: the page opens the engine once.
Staff-only figures (every tenant's), as `monitoring.queries`.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client
from django.conf import settings

# How far before a window's first bucket the counters look for the sample their first
# increase is measured from (a missed minute or two of sampling must not lose it).
COUNTER_LOOKBACK = datetime.timedelta(minutes=15)


@dataclass(frozen=True)
class Window:
    key: str  # the URL's `window`
    label: str
    span: datetime.timedelta
    step: datetime.timedelta  # one bucket: span / step is the number of points

    def buckets(self, now: datetime.datetime) -> list[datetime.datetime]:
        """Return the starts of the window's buckets, oldest first, the last one holding `now`.

        Aligned to multiples of the step since the epoch, as ClickHouse's toStartOfInterval.
        """
        step = int(self.step.total_seconds())
        last = int(now.timestamp()) // step * step
        count = int(self.span / self.step)
        return [
            datetime.datetime.fromtimestamp(last - step * n, tz=datetime.UTC)
            for n in reversed(range(count))
        ]


WINDOWS = {
    window.key: window
    for window in (
        Window("1h", "1 hour", datetime.timedelta(hours=1), datetime.timedelta(minutes=1)),
        Window("24h", "24 hours", datetime.timedelta(hours=24), datetime.timedelta(minutes=5)),
        Window("7d", "7 days", datetime.timedelta(days=7), datetime.timedelta(minutes=30)),
        Window("30d", "30 days", datetime.timedelta(days=30), datetime.timedelta(hours=2)),
    )
}
DEFAULT_WINDOW = "24h"

Key = tuple[str, str]  # (metric name, the `by` label's value; "" when not split)


def _limits() -> str:
    return f"readonly=1, max_execution_time={int(settings.ANALYTICS_DASHBOARD_TIMEOUT)}"


def _series(by: str | None) -> str:
    return "labels[{by:String}]" if by else "''"


def _utc(moment: datetime.datetime) -> datetime.datetime:
    # The column has no time zone: ClickHouse hands back naive UTC times.
    return moment.replace(tzinfo=datetime.UTC) if moment.tzinfo is None else moment


def gauges(
    client: Client,
    names: list[str],
    *,
    start: datetime.datetime,
    end: datetime.datetime,
    step: datetime.timedelta,
    by: str | None = None,
) -> dict[Key, dict[datetime.datetime, tuple[float, float]]]:
    """Return {(name, label value): {bucket start: (mean, peak)}} of gauges `names`.

    Each minute's samples are first summed over every label but `by` (connections over their
    states, bytes over tiers when split by tenant), then folded into buckets of `step`.
    """
    rows = client.query(
        "SELECT name, series, toStartOfInterval(timestamp, INTERVAL {step:UInt32} SECOND) AS b,"
        " avg(total), max(total) FROM ("
        f" SELECT name, timestamp, {_series(by)} AS series, sum(value) AS total FROM metrics"
        " WHERE name IN {names:Array(String)}"
        " AND timestamp >= {start:DateTime64(3)} AND timestamp < {end:DateTime64(3)}"
        " GROUP BY name, timestamp, series"
        f") GROUP BY name, series, b ORDER BY name, series, b SETTINGS {_limits()}",
        parameters={
            "names": names,
            "by": by or "",
            "start": start,
            "end": end,
            "step": int(step.total_seconds()),
        },
    ).result_rows
    found: dict[Key, dict[datetime.datetime, tuple[float, float]]] = defaultdict(dict)
    for name, series, bucket, mean, peak in rows:
        found[(name, series)][_utc(bucket)] = (float(mean), float(peak))
    return dict(found)


def increases(
    client: Client,
    names: list[str],
    *,
    start: datetime.datetime,
    end: datetime.datetime,
    step: datetime.timedelta | None,
    by: str | None = None,
) -> dict[Key, dict[datetime.datetime, float]]:
    """Return {(name, label value): {bucket start: increase}} of counters `names`.

    The increase of each labelled series between consecutive samples (a drop is a reset: the
    new value is the increase), summed per bucket over every label but `by`. `step=None`: one
    bucket for the whole of [start, end), keyed by `start`.
    """
    bucket = (
        "toStartOfInterval(timestamp, INTERVAL {step:UInt32} SECOND)"
        if step
        else "{start:DateTime64(3)}"
    )
    rows = client.query(
        "SELECT name, series, b, sum(increase) FROM ("
        f" SELECT name, {_series(by)} AS series, timestamp, {bucket} AS b,"
        "  value - lagInFrame(value, 1, value) OVER previous AS change,"
        "  if(change < 0, value, change) AS increase"
        " FROM metrics WHERE name IN {names:Array(String)}"
        " AND timestamp >= {lookback:DateTime64(3)} AND timestamp < {end:DateTime64(3)}"
        " WINDOW previous AS (PARTITION BY name, labels ORDER BY timestamp"
        "  ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)"
        ") WHERE timestamp >= {start:DateTime64(3)}"
        f" GROUP BY name, series, b ORDER BY name, series, b SETTINGS {_limits()}",
        parameters={
            "names": names,
            "by": by or "",
            "start": start,
            "end": end,
            "lookback": start - COUNTER_LOOKBACK,
            "step": int(step.total_seconds()) if step else 0,
        },
    ).result_rows
    found: dict[Key, dict[datetime.datetime, float]] = defaultdict(dict)
    for name, series, bucket_start, increase in rows:
        found[(name, series)][_utc(bucket_start)] = float(increase)
    return dict(found)


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def latest(
    client: Client, *, now: datetime.datetime, within: datetime.timedelta
) -> tuple[datetime.datetime | None, list[Sample]]:
    """Return the newest sampling minute no older than `within`, and its samples (or None, [])."""
    rows = client.query(
        "SELECT timestamp, name, labels, value FROM metrics WHERE timestamp = ("
        " SELECT max(timestamp) FROM metrics"
        " WHERE timestamp >= {since:DateTime64(3)} AND timestamp <= {now:DateTime64(3)})"
        f" ORDER BY name SETTINGS {_limits()}",
        parameters={"since": now - within, "now": now},
    ).result_rows
    if not rows:
        return None, []
    return _utc(rows[0][0]), [Sample(name, dict(labels), float(v)) for _, name, labels, v in rows]
