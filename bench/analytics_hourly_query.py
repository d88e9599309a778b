"""Measure the dashboard's 7-day hourly tenant query at 10 M and 100 M events, against count().

On the embedded engine (chdb, a temporary directory) it loads events with
`INSERT ... SELECT FROM numbers(...)` in ClickHouse: 100 tenants, 8 event types, 30 days, in
time order (as the outbox delivers them), first up to 10 M, measures, then up to 100 M
(BENCH_SCALES, comma-separated totals) and measures again. The rollup `events_hourly` fills
through its materialized view as the rows go in. At each size, for random tenants, alternated
run by run in the same process:

- baseline : raw `SELECT count() FROM events` (the whole table) on an open client;
- floor    : `SELECT count()` over the rollup with the same tenant and hour filter (a few
             granules read, nothing grouped): the embedded engine's own cost of any query that
             reads a MergeTree range, which the chart query cannot go below;
- uncached : the dashboard layer's `events_by_hour` query for one tenant and the last 7 days
             (from the rollup; tenant filter, parameters, readonly, limits) on an open client:
             what ClickHouse does for every cache miss;
- raw      : the same chart counted from `events` (the query before the rollup), for scale;
- charts   : every chart query of a tenant dashboard (two: the rollup by type, document
             type and hour; active users per day) on an open client;
- open     : opening and closing the embedded engine under its lock around `SELECT 1`;
- request  : `dashboards.clickhouse_charts` on a cache miss (a new generation each run): open the
             engine, the chart queries, store in Redis: what a web request pays;
- cached   : `dashboards.clickhouse_charts` again, served from Redis (the 15-minute cache).

It checks at each size that the rollup agrees with the raw table for every key. Needs
PostgreSQL (a scratch database for the tenant context) and the cache (REDIS_URL).

    METIS_ENV_FILE=var/test.env .venv/bin/python bench/analytics_hourly_query.py
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "metis.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.utils import timezone  # noqa: E402

from analytics import clickhouse, dashboards, rollups, schema  # noqa: E402
from tenants import db  # noqa: E402
from tests.support import scratch  # noqa: E402

DATABASE = "bench_metis_hourly"
SCALES = [int(n) for n in os.environ.get("BENCH_SCALES", "10000000,100000000").split(",")]
TENANTS = 100
RUNS = int(os.environ.get("BENCH_RUNS", 40))
SPAN = 30 * 86400  # seconds of history

# Rows `start` .. `start + count - 1`: `count` events spread evenly over the last 30 days in time
# order (each load covers the 30 days again), each jittered by up to a minute.
LOAD = """
INSERT INTO events (event_id, tenant_id, event_type, event_data, user_id, timestamp)
SELECT
    generateUUIDv4(number),
    toUUID(concat('00000000-0000-4000-8000-', leftPad(toString(number % {tenants}), 12, '0'))),
    arrayElement(['auth.sign_in', 'auth.sign_out', 'auth.sign_in_failed', 'document.uploaded',
                  'document.downloaded', 'document.deleted', 'document.tier_changed',
                  'staff.tenant_access'], 1 + (intHash32(number) % 8)),
    arrayElement(['{{"document_type": "pan"}}', '{{"document_type": "aadhar"}}',
                  '{{"document_type": "passport"}}'], 1 + (intHash32(number + 1) % 3)),
    if(number % 5 = 0, NULL, toUUID(concat('00000000-0000-4000-9000-',
        leftPad(toString(intHash32(number) % 5000), 12, '0')))),
    toDateTime64({origin}, 3) + toIntervalMillisecond(
        intDiv((number - {start}) * {span_ms}, {count}) + intHash32(number + 2) % 60000)
FROM numbers({start}, {count})
"""

# The chart before the rollup: the spec's query over `events`.
RAW_HOURLY = (
    "SELECT event_type, count() AS event_count, toStartOfHour(timestamp) AS hour "
    "FROM events WHERE tenant_id = {tenant_id:UUID} AND "
    "created_date BETWEEN {start:Date} AND {end:Date} GROUP BY event_type, hour ORDER BY hour"
)


# The engine's floor for a range read of the rollup: the chart's filter, nothing grouped.
FLOOR = (
    "SELECT count() FROM events_hourly WHERE tenant_id = {tenant_id:UUID} AND "
    "hour >= toDateTime({start:Date}) AND hour < toDateTime({end:Date} + INTERVAL 1 DAY)"
)


def by_type_and_hour(rollup) -> dict:
    """The chart query's rows (split by document type too) summed by event type and hour."""
    sums: dict = {}
    for event_type, _document_type, count, hour in rollup:
        sums[event_type, hour] = sums.get((event_type, hour), 0) + count
    return sums


def tenant_id(n: int) -> uuid.UUID:
    return uuid.UUID(f"00000000-0000-4000-8000-{n:012d}")


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


def load(start: int, count: int, origin: int) -> float:
    started = time.perf_counter()
    with clickhouse.session() as client:
        client.command(
            LOAD.format(
                tenants=TENANTS,
                origin=origin,
                span_ms=SPAN * 1000,
                start=start,
                count=count,
            )
        )
    return time.perf_counter() - started


def measure(size: int, rng: random.Random) -> dict[str, list[float]]:
    today = timezone.now().date()

    def scope() -> dashboards.Scope:
        return dashboards.Scope(
            tenant_id=tenant_id(rng.randrange(TENANTS)),
            start=today - timedelta(days=7),
            end=today,
        )

    samples: dict[str, list[float]] = {
        k: []
        for k in ("baseline", "floor", "uncached", "raw", "charts", "open", "request", "cached")
    }

    def timed(label: str, run: Callable[[], object]) -> object:
        started = time.perf_counter()
        result = run()
        samples[label].append(time.perf_counter() - started)
        return result

    names = [n for n, q in dashboards.QUERIES.items() if not q.all_tenants_only]
    with clickhouse.session() as client:
        dashboards.run_query(client, "events_by_hour", scope())  # first touch
        for _ in range(RUNS):
            timed("baseline", lambda: client.query("SELECT count() FROM events").result_rows)
            chosen = scope()
            rollup = timed(
                "uncached", lambda s=chosen: dashboards.run_query(client, "events_by_hour", s)
            )
            parameters = {
                "tenant_id": str(chosen.tenant_id),
                "start": chosen.start,
                "end": chosen.end,
            }
            timed("floor", lambda p=parameters: client.query(FLOOR, parameters=p).result_rows)
            raw = timed(
                "raw", lambda p=parameters: client.query(RAW_HOURLY, parameters=p).result_rows
            )
            assert by_type_and_hour(rollup) == {(t, h): n for t, n, h in raw}
            timed("charts", lambda s=chosen: [dashboards.run_query(client, n, s) for n in names])
    for _ in range(RUNS):

        def open_engine() -> None:
            with clickhouse.session() as client:
                client.query("SELECT 1")

        timed("open", open_engine)
        chosen = scope()
        with db.tenant_context(chosen.tenant_id):
            dashboards._bump()  # a cache miss, as after a drain (what invalidate() does)
            timed("request", lambda s=chosen: dashboards.clickhouse_charts(s))
            result = timed("cached", lambda s=chosen: dashboards.clickhouse_charts(s))
            assert result["cached"]
    return samples


def report(size: int, samples: dict[str, list[float]], rollup_rows: int, parts: str) -> None:
    base50, base95 = percentiles(samples["baseline"])
    print(f"\nevents: {size:,} over 30 days, {TENANTS} tenants; {RUNS} runs each")
    print(f"rollup: {rollup_rows:,} rows ({parts}); agrees with the raw table for every key")
    print(f"{'':10} {'p50 ms':>9} {'p95 ms':>9} {'p50/base':>9} {'p95/base':>9}")
    for label, values in samples.items():
        p50, p95 = percentiles(values)
        print(
            f"{label:10} {p50 * 1000:9.2f} {p95 * 1000:9.2f} "
            f"{p50 / base50:9.2f} {p95 / base95:9.2f}"
        )


def main() -> None:
    if not settings.REDIS_URL:
        sys.exit("set REDIS_URL: the cached figures are about the Redis cache")
    tmp = tempfile.TemporaryDirectory(prefix="metis-bench-chdb-")
    settings.CLICKHOUSE_URL = ""
    settings.CLICKHOUSE_CHDB_PATH = Path(tmp.name) / "data"
    settings.CLICKHOUSE_DATABASE = "bench"
    scratch.scratch_database_create(DATABASE)
    try:
        from tenants.models import Tenant

        Tenant.objects.bulk_create(
            [Tenant(id=tenant_id(n), name=f"T{n}", subdomain=f"t{n}") for n in range(TENANTS)]
        )
        schema.migrate()
        origin = int(time.time()) - SPAN
        rng, loaded = random.Random(1), 0
        for size in SCALES:
            seconds = load(loaded, size - loaded, origin)
            print(f"loaded {size - loaded:,} events in {seconds:.1f}s", file=sys.stderr)
            loaded = size
            with clickhouse.session() as client:
                assert client.query("SELECT count() FROM events").result_rows[0][0] == size
                assert rollups.differences(client, tenant_id=None) == []
                rollup_rows, parts = client.query(
                    "SELECT sum(rows), count() FROM system.parts WHERE active "
                    "AND database = currentDatabase() AND table = 'events_hourly'"
                ).result_rows[0]
            report(size, measure(size, rng), rollup_rows, f"{parts} parts")
    finally:
        scratch.scratch_database_drop(DATABASE)
        tmp.cleanup()


if __name__ == "__main__":
    main()
