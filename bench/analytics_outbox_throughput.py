"""Measure how fast the outbox drain delivers events to ClickHouse, against a raw insert.

Both sides move the same rows into the same kind of `events` table on the embedded engine
(chdb, in a temporary directory), in batches of ANALYTICS_OUTBOX_BATCH_SIZE, alternated round by
round:

- drain: `analytics.services.outbox_drain_tenant` over EVENTS pending outbox rows: per batch one
  PostgreSQL statement and commit (`DELETE ... RETURNING` of the batch out of the outbox into
  one `events_outbox_batch` row, answering with the batch as TabSeparated text), open the engine
  under its lock (once per drain here), insert with the deduplication token, delete the batch
  row (in the next claim's transaction); then bump the dashboard generation;
- raw: one clickhouse-connect client, already open, inserting the same rows (Python lists);
- PostgreSQL alone: the drain's claims and batch deletions over the same number of outbox rows,
  nothing sent (the drain's private helpers): the ceiling the outbox's own writes put on the
  drain.

It prints events/s for each, the drain's ratio to the raw insert, and the issue's goals
(>= 0.5x the raw insert and >= 30,000 events/s) as met or not.

It builds a scratch PostgreSQL database (`bench_metis_analytics`) and drops it at the end.

    METIS_ENV_FILE=var/test.env .venv/bin/python bench/analytics_outbox_throughput.py
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "metis.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.db import connections  # noqa: E402

from analytics import clickhouse, schema, services  # noqa: E402
from documents import events as document_events  # noqa: E402
from tenants import db  # noqa: E402
from tenants import events as tenant_events  # noqa: E402
from tenants import services as tenant_services  # noqa: E402
from tests.support import scratch  # noqa: E402

DATABASE = "bench_metis_analytics"
EVENTS = 20_000
ROUNDS = 5
GOAL_RATIO = 0.5
GOAL_RATE = 30_000


def history(n: int) -> list[tuple]:
    start = datetime.now(UTC) - timedelta(days=3)
    kinds = [tenant_events.SIGN_IN, document_events.UPLOADED, document_events.DOWNLOADED]
    return [
        (start + timedelta(seconds=i * 7), kinds[i % 3], {"document_type": "pan", "i": i}, None)
        for i in range(n)
    ]


def vacuum_outbox() -> None:
    """What autovacuum does between drains in production. This machine's PostgreSQL runs with
    autovacuum off, and each round leaves EVENTS dead outbox rows that the next claims would
    step over; not timed."""
    with connections["owner"].cursor() as cursor:
        cursor.execute("VACUUM ANALYZE analytics_event_outbox, events_outbox_batch")


def main() -> None:
    tmp = tempfile.TemporaryDirectory(prefix="metis-bench-chdb-")
    settings.CLICKHOUSE_URL = ""
    settings.CLICKHOUSE_CHDB_PATH = Path(tmp.name) / "data"
    settings.CLICKHOUSE_DATABASE = "bench"
    scratch.scratch_database_create(DATABASE)
    try:
        schema.migrate()
        tenant = tenant_services.tenant_create(name="Bench", subdomain="bench")
        drain_rates, raw_rates, postgres_rates = [], [], []
        for round_number in range(1, ROUNDS + 1):
            # The drain: rows written to the outbox first (not timed), then delivered.
            vacuum_outbox()
            with db.tenant_context(tenant.pk):  # a script is an entry point
                services.outbox_record_history(tenant_id=tenant.pk, history=history(EVENTS))
            started = time.perf_counter()
            result = services.outbox_drain_tenant(tenant_id=tenant.pk)
            drain_rates.append(result.sent / (time.perf_counter() - started))
            assert result.sent == EVENTS, result

            # The baseline: the same rows, straight from Python, one open client.
            rows = [
                [uuid.uuid4(), tenant.pk, event_type, json.dumps(data), None, at]
                for at, event_type, data, _ in history(EVENTS)
            ]
            size = settings.ANALYTICS_OUTBOX_BATCH_SIZE
            with clickhouse.session() as client:
                started = time.perf_counter()
                for offset in range(0, EVENTS, size):
                    client.insert(
                        "events", rows[offset : offset + size], column_names=services.EVENT_COLUMNS
                    )
                raw_rates.append(EVENTS / (time.perf_counter() - started))
            # PostgreSQL alone: claim and mark the same number of rows, send nothing.
            vacuum_outbox()
            with db.tenant_context(tenant.pk):
                services.outbox_record_history(tenant_id=tenant.pk, history=history(EVENTS))
            started = time.perf_counter()
            claimed, delivered = 0, ()
            while batch := services._claim_batch(tenant.pk, size, delivered=delivered):
                claimed, delivered = claimed + batch.size, (batch.token,)
            services._execute(tenant.pk, services._DELIVERED_SQL, tokens=list(delivered))
            postgres_rates.append(claimed / (time.perf_counter() - started))
            assert claimed == EVENTS, claimed
            print(
                f"round {round_number}/{ROUNDS}: drain {drain_rates[-1]:,.0f} ev/s, "
                f"raw {raw_rates[-1]:,.0f} ev/s, ratio {drain_rates[-1] / raw_rates[-1]:.2f}, "
                f"PostgreSQL alone {postgres_rates[-1]:,.0f} ev/s",
                file=sys.stderr,
            )
        with clickhouse.session() as client:
            total = client.query("SELECT count() FROM events").result_rows[0][0]
        # Every event once, none twice; the PostgreSQL-only rows were never sent.
        assert total == 2 * EVENTS * ROUNDS, total
        drain, raw = statistics.median(drain_rates), statistics.median(raw_rates)
        print(f"events per round: {EVENTS:,}, batch size {settings.ANALYTICS_OUTBOX_BATCH_SIZE}")
        print(f"outbox drain   : {drain:>10,.0f} events/s (median of {ROUNDS})")
        print(f"raw insert     : {raw:>10,.0f} events/s (baseline)")
        ratios = [d / r for d, r in zip(drain_rates, raw_rates, strict=True)]
        ratio = statistics.median(ratios)
        print(f"drain / raw    : {ratio:>10.2f}x (median of per-round ratios)")
        print("per round      : " + ", ".join(f"{r:.2f}x" for r in ratios))
        postgres = statistics.median(postgres_rates)
        print(f"PostgreSQL only: {postgres:>10,.0f} events/s (claim + delete, nothing sent)")
        for goal, met in (
            (f">= {GOAL_RATIO}x the raw insert", ratio >= GOAL_RATIO),
            (f">= {GOAL_RATE:,} events/s", drain >= GOAL_RATE),
        ):
            print(f"goal {goal:<25}: {'met' if met else 'NOT met'}")
    finally:
        scratch.scratch_database_drop(DATABASE)
        tmp.cleanup()


if __name__ == "__main__":
    main()
