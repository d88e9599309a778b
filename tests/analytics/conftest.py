"""Analytics fixtures: the real ClickHouse engine (chdb) in a private directory per test worker,
a fresh ClickHouse database per test, migrated by the real migration command."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from analytics import clickhouse, schema, services
from tests.factories import TenantFactory


@pytest.fixture(scope="session")
def chdb_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("chdb") / "data"


@pytest.fixture
def clickhouse_db(settings, chdb_dir):
    """A migrated ClickHouse database of its own for this test; dropped afterwards."""
    settings.CLICKHOUSE_URL = ""
    settings.CLICKHOUSE_CHDB_PATH = chdb_dir
    settings.CLICKHOUSE_CLUSTER = ""
    settings.CLICKHOUSE_LOCK_TIMEOUT = 30
    settings.CLICKHOUSE_DATABASE = f"test_{uuid.uuid4().hex[:12]}"
    schema.migrate()
    yield settings.CLICKHOUSE_DATABASE
    settings.CLICKHOUSE_URL = ""
    with clickhouse.session(use_database=False) as client:
        client.command(f"DROP DATABASE IF EXISTS `{settings.CLICKHOUSE_DATABASE}`")


def clickhouse_rows(sql: str, **parameters) -> list[tuple]:
    with clickhouse.session() as client:
        return client.query(sql, parameters=parameters).result_rows


def events_in_clickhouse(tenant_id=None) -> int:
    """Count the rows in `events` (plain count(): no FINAL, no uniq, so duplicates would show)."""
    if tenant_id is None:
        return clickhouse_rows("SELECT count() FROM events")[0][0]
    return clickhouse_rows(
        "SELECT count() FROM events WHERE tenant_id = {t:UUID}", t=str(tenant_id)
    )[0][0]


def insert_events(rows: list[tuple]) -> None:
    """Write (tenant_id, event_type, data_json, user_id, timestamp) rows straight to ClickHouse."""
    with clickhouse.session() as client:
        client.insert(
            "events",
            [[uuid.uuid4(), *row] for row in rows],
            column_names=services.EVENT_COLUMNS,
        )


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def acme(committed_db):
    return TenantFactory(name="Acme Lending", subdomain="acme")


@pytest.fixture
def globex(committed_db):
    return TenantFactory(name="Globex Finance", subdomain="globex")
