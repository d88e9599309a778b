"""Measure the spec's 7-day hourly tenant query over 10 million events, against count().

On the embedded engine (chdb, a temporary directory) it loads EVENTS events with
`INSERT ... SELECT FROM numbers(...)`: 100 tenants, 8 event types, spread over 30 days. Then,
for random tenants, alternated run by run in the same process:

- baseline : raw `SELECT count() FROM events` (the whole table) on an open client;
- uncached : the dashboard layer's `events_by_hour` query for one tenant and the last 7 days
             (tenant filter, parameters, readonly, limits) on an open client: what ClickHouse
             does for every cache miss;
- request  : `dashboards.clickhouse_charts` on a cache miss (a new generation each run): every
             chart's query plus opening the embedded engine under its lock, as a web request pays;
- cached   : `dashboards.clickhouse_charts` again, served from Redis (the 15-minute cache).

Needs PostgreSQL (a scratch database for the tenant context) and the cache (REDIS_URL).

    METIS_ENV_FILE=var/test.env REDIS_URL=redis://127.0.0.1:6379/5 \\
        .venv/bin/python bench/analytics_hourly_query.py
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
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "metis.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.utils import timezone  # noqa: E402

from analytics import clickhouse, dashboards, schema  # noqa: E402
from tenants import db  # noqa: E402
from tests.support import scratch  # noqa: E402

DATABASE = "bench_metis_hourly"
EVENTS = int(os.environ.get("BENCH_EVENTS", 10_000_000))
TENANTS = 100
RUNS = 40

LOAD = """
INSERT INTO events (event_id, tenant_id, event_type, event_data, user_id, timestamp)
SELECT
    generateUUIDv4(number),
    toUUID(concat('00000000-0000-4000-8000-', leftPad(toString(number % {tenants}), 12, '0'))),
    arrayElement(['auth.sign_in', 'auth.sign_out', 'auth.sign_in_failed', 'document.uploaded',
                  'document.downloaded', 'document.deleted', 'document.tier_changed',
                  'staff.tenant_access'], 1 + (intHash32(number) % 8)),
    '{{"document_type": "pan"}}',
    if(number % 5 = 0, NULL, toUUID(concat('00000000-0000-4000-9000-',
        leftPad(toString(intHash32(number) % 5000), 12, '0')))),
    now64(3) - toIntervalSecond(intHash64(number) % (30 * 86400))
FROM numbers({events})
"""


def tenant_id(n: int) -> uuid.UUID:
    return uuid.UUID(f"00000000-0000-4000-8000-{n:012d}")


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


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
        print(f"loading {EVENTS:,} events...", file=sys.stderr)
        started = time.perf_counter()
        with clickhouse.session() as client:
            client.command(LOAD.format(tenants=TENANTS, events=EVENTS))
            total = client.query("SELECT count() FROM events").result_rows[0][0]
        print(f"loaded {total:,} events in {time.perf_counter() - started:.1f}s", file=sys.stderr)

        today = timezone.now().date()
        rng = random.Random(1)

        def scope() -> dashboards.Scope:
            return dashboards.Scope(
                tenant_id=tenant_id(rng.randrange(TENANTS)),
                start=today - timedelta(days=7),
                end=today,
            )

        samples: dict[str, list[float]] = {
            k: [] for k in ("baseline", "uncached", "request", "cached")
        }
        rows_seen = []

        def timed(label: str, run: Callable[[], object]) -> object:
            started = time.perf_counter()
            result = run()
            samples[label].append(time.perf_counter() - started)
            return result

        with clickhouse.session() as client:
            first = time.perf_counter()
            dashboards.run_query(client, "events_by_hour", scope())
            first_run = time.perf_counter() - first
            for _ in tqdm(range(RUNS), desc="query runs", file=sys.stderr, disable=None):
                timed("baseline", lambda: client.query("SELECT count() FROM events").result_rows)
                chosen = scope()
                rows_seen.append(
                    len(
                        timed(
                            "uncached",
                            lambda s=chosen: dashboards.run_query(client, "events_by_hour", s),
                        )
                    )
                )
        for _ in tqdm(range(RUNS), desc="request runs", file=sys.stderr, disable=None):
            chosen = scope()
            with db.tenant_context(chosen.tenant_id):
                dashboards._bump()  # a cache miss, as after a drain (what invalidate() does)
                timed("request", lambda s=chosen: dashboards.clickhouse_charts(s))
                result = timed("cached", lambda s=chosen: dashboards.clickhouse_charts(s))
                assert result["cached"]

        base50, base95 = percentiles(samples["baseline"])
        print(f"events: {total:,} over 30 days, {TENANTS} tenants; {RUNS} runs each")
        rows = statistics.median(rows_seen)
        print(f"hourly query rows per tenant (7 days x event types): ~{rows:.0f}")
        print(f"first hourly query after opening: {first_run * 1000:.1f} ms")
        print(f"{'':10} {'p50 ms':>9} {'p95 ms':>9} {'p50/base':>9} {'p95/base':>9}")
        for label in ("baseline", "uncached", "request", "cached"):
            p50, p95 = percentiles(samples[label])
            print(
                f"{label:10} {p50 * 1000:9.2f} {p95 * 1000:9.2f} "
                f"{p50 / base50:9.2f} {p95 / base95:9.2f}"
            )
    finally:
        scratch.scratch_database_drop(DATABASE)
        tmp.cleanup()


if __name__ == "__main__":
    main()
