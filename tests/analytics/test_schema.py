"""ClickHouse migrations: numbered files, recorded, idempotent, cluster-ready."""

from django.core.management import call_command

from analytics import schema
from tests.analytics.conftest import clickhouse_rows, events_in_clickhouse, insert_events, now


def test_migrations_apply_twice_cleanly(clickhouse_db):
    import uuid

    insert_events([(uuid.uuid4(), "auth.sign_in", "{}", None, now())])
    assert schema.migrate() == []  # recorded: nothing to do
    call_command("clickhouse_migrate")  # the command, too
    # Even with the record lost, every statement is IF NOT EXISTS: applying again is harmless.
    clickhouse_rows("DELETE FROM clickhouse_migrations WHERE 1 = 1")
    every = ["0001_events", "0002_metrics", "0003_events_hourly"]
    assert schema.migrate() == every
    assert events_in_clickhouse() == 1
    assert (
        clickhouse_rows("SELECT sum(events) FROM events_hourly")[0][0] == 1
    )  # not backfilled twice
    names = clickhouse_rows("SELECT DISTINCT name FROM clickhouse_migrations ORDER BY name")
    assert [r[0] for r in names] == every


def test_events_table_is_the_specs(clickhouse_db):
    engine, partition_key, sorting_key = clickhouse_rows(
        "SELECT engine, partition_key, sorting_key FROM system.tables "
        "WHERE database = currentDatabase() AND name = 'events'"
    )[0]
    assert (engine, partition_key, sorting_key) == (
        "MergeTree",
        "created_date",
        "tenant_id, event_type, timestamp",
    )
    columns = clickhouse_rows(
        "SELECT name, type, default_kind, default_expression FROM system.columns "
        "WHERE database = currentDatabase() AND table = 'events' ORDER BY position"
    )
    assert columns == [
        ("event_id", "UUID", "", ""),
        ("tenant_id", "UUID", "", ""),
        ("event_type", "String", "", ""),
        ("event_data", "String", "", ""),
        ("user_id", "Nullable(UUID)", "", ""),
        ("timestamp", "DateTime64(3)", "", ""),
        ("created_date", "Date", "MATERIALIZED", "toDate(timestamp)"),
    ]


def test_cluster_setting_renders_replicated_tables_behind_distributed_ones():
    (migration,) = [m for m in schema.migrations() if m.name == "0001_events"]
    single = schema.render(migration.sql, cluster="", database="metis")
    assert len(single) == 1
    assert single[0].startswith("CREATE TABLE IF NOT EXISTS events") and "_local" not in single[0]
    assert "ENGINE = MergeTree()" in single[0] and "ON CLUSTER" not in single[0]

    local, distributed = schema.render(migration.sql, cluster="metis_cluster", database="metis")
    assert local.startswith("CREATE TABLE IF NOT EXISTS events_local ON CLUSTER `metis_cluster`")
    assert (
        "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/metis/events_local', "
        "'{replica}')" in local
    )
    assert "PARTITION BY created_date" in local
    assert "ORDER BY (tenant_id, event_type, timestamp)" in local
    assert distributed == (
        "CREATE TABLE IF NOT EXISTS events ON CLUSTER `metis_cluster` AS events_local "
        "ENGINE = Distributed('metis_cluster', 'metis', 'events_local', cityHash64(tenant_id))"
    )
    bootstrap = schema.bootstrap_statements(cluster="metis_cluster", database="metis")
    assert bootstrap[0] == "CREATE DATABASE IF NOT EXISTS `metis` ON CLUSTER `metis_cluster`"
    assert "ReplicatedReplacingMergeTree" in bootstrap[1] and "ON CLUSTER" in bootstrap[1]


def test_migration_files_are_numbered_and_idempotent():
    for migration in schema.migrations():
        for statement in schema.render(migration.sql, cluster="c", database="metis"):
            # The rollup's backfill inserts only what the rollup lacks: a second run adds nothing
            # (tests/analytics/test_rollups.py applies it twice).
            backfill = statement.startswith("INSERT INTO events_hourly ")
            assert "IF NOT EXISTS" in statement or backfill, statement


def test_rollup_renders_for_a_cluster_behind_a_distributed_table():
    (migration,) = [m for m in schema.migrations() if m.name == "0003_events_hourly"]
    local, distributed, view, backfill = schema.render(migration.sql, cluster="c", database="m")
    assert local.startswith("CREATE TABLE IF NOT EXISTS events_hourly_local ON CLUSTER `c`")
    assert "ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/m/events_hourly_local'" in local
    assert distributed.startswith("CREATE TABLE IF NOT EXISTS events_hourly ON CLUSTER `c`")
    assert "TO events_hourly_local" in view and "FROM events_local" in view
    # The backfill reads and writes the Distributed tables: every shard's rows are compared.
    assert backfill.startswith("INSERT INTO events_hourly (") and "_local" not in backfill
