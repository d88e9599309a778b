"""Analytics backup: the ClickHouse events table, partition by partition, restored."""

from __future__ import annotations

import datetime
import uuid

import clickhouse_connect
import pytest

from backups.models import BackupRun
from backups.services import analytics, object_backups

EVENTS_DDL = """
CREATE TABLE {name} (
    event_id UUID,
    tenant_id UUID,
    event_type String,
    event_data String,
    user_id Nullable(UUID),
    timestamp DateTime64(3),
    created_date Date MATERIALIZED toDate(timestamp)
) ENGINE = MergeTree()
PARTITION BY created_date
ORDER BY (tenant_id, event_type, timestamp)
"""


@pytest.fixture
def chdb_client(tmp_path):
    # The embedded ClickHouse engine (chdb), as analytics/clickhouse.py uses it.
    return clickhouse_connect.get_client(dsn=f"chdb:///{tmp_path / 'chdb'}")


def _rows(client, table: str) -> list[tuple]:
    return client.query(
        f"SELECT event_id, tenant_id, event_type, event_data, user_id, timestamp, created_date "
        f"FROM {table} ORDER BY event_id"
    ).result_rows


def test_events_backed_up_per_partition_restore_into_an_empty_table(
    db, backup_objects, chdb_client
):
    chdb_client.command(EVENTS_DDL.format(name="events"))
    start = datetime.datetime(2026, 11, 25, 10, 0, tzinfo=datetime.UTC)
    tenants = [uuid.uuid4(), uuid.uuid4()]
    rows = [
        [
            uuid.uuid4(),
            tenants[n % 2],
            "document.uploaded",
            f'{{"n": {n}}}',
            uuid.uuid4() if n % 3 else None,
            start + datetime.timedelta(hours=7 * n),
        ]
        for n in range(30)
    ]
    chdb_client.insert(
        "events",
        rows,
        column_names=["event_id", "tenant_id", "event_type", "event_data", "user_id", "timestamp"],
    )
    original = _rows(chdb_client, "events")

    run = analytics.backup_run_analytics(client=chdb_client)
    assert len(run.details["partitions"]) == len({r[-1] for r in original}) > 1
    assert object_backups.object_backup_verify(run=run).verified

    chdb_client.command(EVENTS_DDL.format(name="events_restored"))
    restored = analytics.analytics_restore(run=run, client=chdb_client, table="events_restored")

    assert restored == 30
    assert _rows(chdb_client, "events_restored") == original


def test_beat_task_backs_up_the_analytics_apps_own_events_table(
    db, backup_objects, settings, tmp_path
):
    from analytics import clickhouse, schema
    from analytics import services as analytics_services
    from backups import tasks

    settings.CLICKHOUSE_URL = ""
    settings.CLICKHOUSE_CHDB_PATH = tmp_path / "chdb-app"
    settings.CLICKHOUSE_DATABASE = f"backup_{uuid.uuid4().hex[:8]}"
    schema.migrate()
    start = datetime.datetime(2026, 11, 20, 9, 0, tzinfo=datetime.UTC)
    with clickhouse.session() as client:
        client.insert(
            "events",
            [
                [uuid.uuid4(), uuid.uuid4(), "auth.sign_in", "{}", None, start.replace(day=d)]
                for d in (20, 21, 22)
            ],
            column_names=analytics_services.EVENT_COLUMNS,
        )

    backups_run = BackupRun.objects.get(pk=tasks.backup_analytics())
    assert backups_run.verified and len(backups_run.details["partitions"]) == 3
    with clickhouse.session() as client:
        client.command("CREATE TABLE events_restored AS events")
        assert (
            analytics.analytics_restore(run=backups_run, client=client, table="events_restored")
            == 3
        )
