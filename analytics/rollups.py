"""The hourly rollup the dashboards read (`events_hourly`, migration 0003) and its correction.

A materialized view adds every block inserted into `events` to `events_hourly`: per tenant,
hour, event type and (for `document.uploaded`) document type, the number of events. A view only
sees inserts, so whatever removes events without inserting (an erasure's `ALTER TABLE events
DELETE`) must correct the rollup: `events_rollup_reconcile` compares the raw counts with the
rolled-up sums, key by key, and inserts the differences (negative after a deletion). The
SummingMergeTree folds them in at its next merge; readers sum() in the meantime.

Inserting differences is idempotent (a second run finds none) and safe beside the outbox drain
but for one narrow window: a block inserted into `events` between the two reads of the
comparison is counted by one and not the other, and the difference inserted for its key is off
by that block. The dashboards' tests compare the rollup with the raw table; the migration runs
the same comparison over all tenants as its backfill.
"""

from __future__ import annotations

import uuid

from analytics import clickhouse

TABLE = "events_hourly"

# The key of a rollup row, computed from a raw event (the view's SELECT, and the backfill's).
KEY_FROM_EVENT = (
    "tenant_id, toStartOfHour(timestamp) AS hour, event_type, "
    "if(event_type = 'document.uploaded', JSONExtractString(event_data, 'document_type'), '') "
    "AS document_type"
)
KEY = "tenant_id, hour, event_type, document_type"

# Per key, the raw count minus the rolled-up sum, where they differ.
_DIFFERENCES = f"""
SELECT {KEY}, raw.events - rolled.events AS events
FROM (
    SELECT {KEY_FROM_EVENT}, toInt64(count()) AS events FROM events
    WHERE {{where}} GROUP BY {KEY}
) AS raw
FULL OUTER JOIN (
    SELECT {KEY}, sum(events) AS events FROM {TABLE} WHERE {{where}} GROUP BY {KEY}
) AS rolled
USING ({KEY})
WHERE raw.events != rolled.events
"""
_SETTINGS = "SETTINGS join_use_nulls = 0"


def _scoped(sql: str, tenant_id: uuid.UUID | None) -> tuple[str, dict]:
    if tenant_id is None:
        return sql.replace("{where}", "1"), {}
    return sql.replace("{where}", "tenant_id = {tenant:UUID}"), {"tenant": str(tenant_id)}


def differences(client, *, tenant_id: uuid.UUID | None) -> list[tuple]:
    """Return the rollup keys that disagree with the raw table, with raw minus rolled-up (none
    when the rollup is exact)."""
    sql, parameters = _scoped(f"{_DIFFERENCES} ORDER BY {KEY} {_SETTINGS}", tenant_id)
    return client.query(sql, parameters=parameters).result_rows


def events_rollup_reconcile(*, tenant_id: uuid.UUID | None, client=None) -> None:
    """Bring `events_hourly` in line with `events` for `tenant_id` (None: every tenant).

    `client`: an open ClickHouse session to reuse. Idempotent.
    """
    if client is None:
        with clickhouse.session() as own:
            events_rollup_reconcile(tenant_id=tenant_id, client=own)
            return
    # insert_deduplicate=0: two corrections of the same shape are two corrections.
    sql, parameters = _scoped(
        f"INSERT INTO {TABLE} ({KEY}, events) {_DIFFERENCES} {_SETTINGS}, insert_deduplicate = 0",
        tenant_id,
    )
    client.command(sql, parameters=parameters)
