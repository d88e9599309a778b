"""The hourly rollup: the dashboards' figures equal counts from the raw `events` table, after a
backfill, a deduplicated re-send, and a deletion corrected by reconciliation."""

import uuid
from datetime import timedelta

import pytest

from analytics import clickhouse, dashboards, rollups, schema, services
from tenants import db
from tests.analytics.conftest import clickhouse_rows, insert_events, now


def last_week(tenant_id) -> dashboards.Scope:
    today = now().date()
    return dashboards.Scope(tenant_id=tenant_id, start=today - timedelta(days=7), end=today)


def seed(tenant_id) -> list[tuple]:
    """Events of several types, document types and hours, some outside the last 7 days."""
    rows = []
    for i in range(60):
        event_type = ["auth.sign_in", "document.uploaded", "document.downloaded"][i % 3]
        document_type = ["pan", "aadhar", "passport", ""][i % 4]
        data = f'{{"document_type": "{document_type}"}}'
        rows.append((tenant_id, event_type, data, uuid.uuid4(), now() - timedelta(hours=5 * i)))
    insert_events(rows)
    return rows


def raw_figures(tenant_id) -> dict:
    """The dashboard's rollup-backed figures, counted from `events` directly."""
    where = (
        "tenant_id = {t:UUID} AND created_date BETWEEN {start:Date} AND {end:Date}"
        if tenant_id
        else "created_date BETWEEN {start:Date} AND {end:Date}"
    )
    scope = last_week(tenant_id)
    params = {"t": str(tenant_id), "start": scope.start, "end": scope.end}
    with clickhouse.session() as client:  # one opening of the engine for the three
        by_type = client.query(
            f"SELECT event_type, count() AS n FROM events WHERE {where} "
            "GROUP BY event_type ORDER BY n DESC, event_type",
            parameters=params,
        ).result_rows
        by_hour = client.query(
            f"SELECT event_type, toStartOfHour(timestamp) AS h, count() FROM events "
            f"WHERE {where} GROUP BY event_type, h",
            parameters=params,
        ).result_rows
        uploads = client.query(
            "SELECT JSONExtractString(event_data, 'document_type') AS d, count() AS n "
            f"FROM events WHERE {where} AND event_type = 'document.uploaded' "
            "GROUP BY d ORDER BY n DESC, d",
            parameters=params,
        ).result_rows
    return {
        "total_events": sum(n for _, n in by_type),
        "top_event_types": {"labels": [t for t, _ in by_type], "data": [n for _, n in by_type]},
        "hourly_total": sum(n for _, _, n in by_hour),
        "hourly_cells": len(by_hour),
        "uploads_by_document_type": {
            "labels": [d or "unknown" for d, _ in uploads],
            "data": [n for _, n in uploads],
        },
    }


def dashboard_figures(tenant_id) -> dict:
    context = db.tenant_context(tenant_id) if tenant_id else db.all_tenants_context()
    with context:
        dashboards._bump()  # a cache miss: the figures come from ClickHouse
        charts = dashboards.clickhouse_charts(last_week(tenant_id))
    assert not charts["cached"]
    series = [n for d in charts["events_by_hour"]["datasets"] for n in d["data"]]
    return {
        "total_events": charts["total_events"],
        "top_event_types": charts["top_event_types"],
        "hourly_total": sum(series),
        "hourly_cells": sum(1 for n in series if n),
        "uploads_by_document_type": charts["uploads_by_document_type"],
    }


def assert_exact(*tenant_ids) -> None:
    for tenant_id in tenant_ids:
        assert dashboard_figures(tenant_id) == raw_figures(tenant_id)
    with clickhouse.session() as client:
        assert rollups.differences(client, tenant_id=None) == []


def test_dashboard_figures_equal_counts_from_the_raw_table(clickhouse_db, tenant, other_tenant):
    seed(tenant.pk)
    seed(tenant.pk)
    seed(other_tenant.pk)
    figures = dashboard_figures(tenant.pk)
    assert figures["total_events"] >= 2 * 7 * 24 // 5  # two copies of an event every 5 hours
    assert sorted(figures["top_event_types"]["labels"]) == [
        "auth.sign_in",
        "document.downloaded",
        "document.uploaded",
    ]
    assert sorted(figures["uploads_by_document_type"]["labels"]) == [
        "aadhar",
        "pan",
        "passport",
        "unknown",
    ]
    assert_exact(tenant.pk, other_tenant.pk)


@pytest.mark.committed
def test_all_tenants_figures_equal_counts_from_the_raw_table(clickhouse_db, tenant, other_tenant):
    seed(tenant.pk)
    seed(other_tenant.pk)
    assert_exact(None)


def test_a_resent_batch_dropped_by_its_token_is_not_counted_twice(clickhouse_db, tenant):
    batch = [
        [uuid.uuid4(), tenant.pk, "auth.sign_in", "{}", None, now() - timedelta(hours=h)]
        for h in range(5)
    ]
    token = {"insert_deduplication_token": str(uuid.uuid4())}
    with clickhouse.session() as client:
        for _ in range(3):  # delivered, then re-sent twice (the drain's retry after a crash)
            client.insert("events", batch, column_names=services.EVENT_COLUMNS, settings=token)
        # The same rows under another token are another batch: both tables count them again.
        client.insert(
            "events",
            batch,
            column_names=services.EVENT_COLUMNS,
            settings={"insert_deduplication_token": str(uuid.uuid4())},
        )
    assert clickhouse_rows("SELECT count() FROM events")[0][0] == 10
    assert dashboard_figures(tenant.pk)["total_events"] == 10
    assert_exact(tenant.pk)


def test_two_batches_alike_in_the_rollup_are_both_counted(clickhouse_db, tenant):
    # Two different events of one tenant, type and hour give the view identical blocks
    # (tenant, hour, type, 1): the rollup must not mistake the second for a re-send.
    at = now().replace(minute=30)
    insert_events([(tenant.pk, "auth.sign_in", "{}", None, at)])
    insert_events([(tenant.pk, "auth.sign_in", "{}", None, at - timedelta(minutes=1))])
    assert dashboard_figures(tenant.pk)["total_events"] == 2
    assert_exact(tenant.pk)


def test_deleted_events_stop_counting_once_reconciled(clickhouse_db, tenant, other_tenant):
    rows = seed(tenant.pk)
    seed(other_tenant.pk)
    gone = [str(row[3]) for row in rows[:20]]
    clickhouse_rows(
        "ALTER TABLE events DELETE WHERE user_id IN {u:Array(UUID)} SETTINGS mutations_sync = 2",
        u=gone,
    )
    # The view sees inserts only: until corrected, the rollup still counts the deleted rows.
    with clickhouse.session() as client:
        assert len(rollups.differences(client, tenant_id=tenant.pk)) > 0
        assert rollups.differences(client, tenant_id=other_tenant.pk) == []
        rollups.events_rollup_reconcile(tenant_id=tenant.pk, client=client)
        assert rollups.differences(client, tenant_id=tenant.pk) == []
        before = client.query("SELECT count(), sum(events) FROM events_hourly").result_rows
        rollups.events_rollup_reconcile(tenant_id=tenant.pk, client=client)  # nothing to do
        assert client.query("SELECT count(), sum(events) FROM events_hourly").result_rows == before
    assert_exact(tenant.pk, other_tenant.pk)
    # Deleting every event of a tenant leaves it with nothing to show.
    clickhouse_rows(
        "ALTER TABLE events DELETE WHERE tenant_id = {t:UUID} SETTINGS mutations_sync = 2",
        t=str(tenant.pk),
    )
    rollups.events_rollup_reconcile(tenant_id=tenant.pk)
    assert dashboard_figures(tenant.pk)["total_events"] == 0
    assert dashboard_figures(tenant.pk)["top_event_types"] == {"labels": [], "data": []}
    assert_exact(tenant.pk, other_tenant.pk)


def test_the_migration_backfills_events_that_predate_the_view(clickhouse_db, tenant):
    seed(tenant.pk)
    clickhouse_rows("DROP TABLE events_hourly_mv")
    clickhouse_rows("DROP TABLE events_hourly")
    clickhouse_rows("DELETE FROM clickhouse_migrations WHERE name = '0003_events_hourly'")
    assert schema.migrate() == ["0003_events_hourly"]
    assert_exact(tenant.pk)
    seed(tenant.pk)  # the view counts what comes after
    # Applying the migration again (record lost) inserts no second copy.
    clickhouse_rows("DELETE FROM clickhouse_migrations WHERE name = '0003_events_hourly'")
    assert schema.migrate() == ["0003_events_hourly"]
    assert_exact(tenant.pk)


def test_rollup_queries_read_one_tenants_range_of_the_key(clickhouse_db, tenant):
    seed(tenant.pk)
    for query in dashboards.QUERIES.values():
        if not query.rollup or query.all_tenants_only:
            continue
        sql, parameters = dashboards.scoped_sql(query, last_week(tenant.pk))
        plan = "\n".join(
            row[0]
            for row in clickhouse_rows(
                "EXPLAIN indexes = 1 " + sql.split(" SETTINGS ")[0], **parameters
            )
        )
        primary = plan.split("PrimaryKey", 1)[1]
        assert "tenant_id" in primary and "hour" in primary.split("Condition", 1)[1]
