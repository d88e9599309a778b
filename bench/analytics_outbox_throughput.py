"""Measure how fast the outbox drain delivers events to ClickHouse, against a raw insert.

Both sides move the same rows into the same kind of `events` table on the embedded engine
(chdb, in a temporary directory), in batches of ANALYTICS_OUTBOX_BATCH_SIZE, alternated round by
round:

- drain: `analytics.services.outbox_drain_tenant` over EVENTS pending outbox rows (claim and
  commit in PostgreSQL, open the engine under its lock, insert with the deduplication token,
  mark the rows sent, bump the dashboard generation);
- raw: one clickhouse-connect client, already open, inserting the same rows.

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

from analytics import clickhouse, schema, services  # noqa: E402
from documents import events as document_events  # noqa: E402
from tenants import db  # noqa: E402
from tenants import events as tenant_events  # noqa: E402
from tenants import services as tenant_services  # noqa: E402
from tests.support import scratch  # noqa: E402

DATABASE = "bench_metis_analytics"
EVENTS = 20_000
ROUNDS = 5


def history(n: int) -> list[tuple]:
    start = datetime.now(UTC) - timedelta(days=3)
    kinds = [tenant_events.SIGN_IN, document_events.UPLOADED, document_events.DOWNLOADED]
    return [
        (start + timedelta(seconds=i * 7), kinds[i % 3], {"document_type": "pan", "i": i}, None)
        for i in range(n)
    ]


def main() -> None:
    tmp = tempfile.TemporaryDirectory(prefix="metis-bench-chdb-")
    settings.CLICKHOUSE_URL = ""
    settings.CLICKHOUSE_CHDB_PATH = Path(tmp.name) / "data"
    settings.CLICKHOUSE_DATABASE = "bench"
    scratch.scratch_database_create(DATABASE)
    try:
        schema.migrate()
        tenant = tenant_services.tenant_create(name="Bench", subdomain="bench")
        drain_rates, raw_rates = [], []
        for round_number in range(1, ROUNDS + 1):
            # The drain: rows written to the outbox first (not timed), then delivered.
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
            print(
                f"round {round_number}/{ROUNDS}: drain {drain_rates[-1]:,.0f} ev/s, "
                f"raw {raw_rates[-1]:,.0f} ev/s, ratio {drain_rates[-1] / raw_rates[-1]:.2f}",
                file=sys.stderr,
            )
        with clickhouse.session() as client:
            total = client.query("SELECT count() FROM events").result_rows[0][0]
        assert total == 2 * EVENTS * ROUNDS, total  # every event once, none twice
        drain, raw = statistics.median(drain_rates), statistics.median(raw_rates)
        print(f"events per round: {EVENTS:,}, batch size {settings.ANALYTICS_OUTBOX_BATCH_SIZE}")
        print(f"outbox drain   : {drain:>10,.0f} events/s (median of {ROUNDS})")
        print(f"raw insert     : {raw:>10,.0f} events/s (baseline)")
        ratios = [d / r for d, r in zip(drain_rates, raw_rates, strict=True)]
        print(f"drain / raw    : {statistics.median(ratios):>10.2f}x (median of per-round ratios)")
        print("per round      : " + ", ".join(f"{r:.2f}x" for r in ratios))
    finally:
        scratch.scratch_database_drop(DATABASE)
        tmp.cleanup()


if __name__ == "__main__":
    main()
