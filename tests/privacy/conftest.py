"""Fixtures for the privacy tests: the real S3 server and ClickHouse engine (chdb)."""

from tests.analytics.conftest import chdb_dir, clickhouse_db  # noqa: F401  (fixtures)
