"""ClickHouse schema migrations: numbered SQL files applied in order and recorded in ClickHouse.

Files live in `analytics/clickhouse_migrations/NNNN_name.sql`; statements end with `;` at the end
of a line. A few placeholders let one file serve both a single server and a cluster
(`CLICKHOUSE_CLUSTER` set):

    ${ON_CLUSTER}               "" (single server), or: ON CLUSTER `c`
    ${TABLE:events}             events, or: events_local
    ${ENGINE:MergeTree:events}  MergeTree(), or:
                                ReplicatedMergeTree('/clickhouse/tables/{shard}/<db>/events_local',
                                '{replica}')
    ${DISTRIBUTED:events:key}   nothing, or: CREATE TABLE IF NOT EXISTS events ON CLUSTER `c`
                                AS events_local ENGINE = Distributed('c', '<db>', ...)

Every statement is idempotent (`IF NOT EXISTS`), so a migration interrupted half-way is simply
applied again; the record only saves the work.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from analytics import clickhouse

MIGRATIONS_DIR = Path(__file__).resolve().parent / "clickhouse_migrations"
RECORD_TABLE = "clickhouse_migrations"
_PLACEHOLDER = re.compile(r"\$\{([A-Z_]+)((?::[^:}]+)*)\}")
_FILE_NAME = re.compile(r"^\d{4}_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str


def migrations() -> list[Migration]:
    """Return the migration files in order."""
    files = sorted(p for p in MIGRATIONS_DIR.iterdir() if _FILE_NAME.match(p.name))
    return [Migration(name=p.stem, sql=p.read_text()) for p in files]


def _quote(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"


def render(sql: str, *, cluster: str, database: str) -> list[str]:
    """Return the statements of one migration for a single server (cluster "") or a cluster."""

    def substitute(match: re.Match) -> str:
        name, args = match.group(1), [a for a in match.group(2).split(":") if a]
        if name == "ON_CLUSTER":
            return f"ON CLUSTER {_quote(cluster)}" if cluster else ""
        if name == "TABLE":
            return f"{args[0]}_local" if cluster else args[0]
        if name == "ENGINE":
            family, table = args
            if not cluster:
                return f"{family}()"
            path = f"/clickhouse/tables/{{shard}}/{database}/{table}_local"
            return f"Replicated{family}('{path}', '{{replica}}')"
        if name == "DISTRIBUTED":
            table, sharding_key = args
            if not cluster:
                return ""
            return (
                f"CREATE TABLE IF NOT EXISTS {table} ON CLUSTER {_quote(cluster)} "
                f"AS {table}_local ENGINE = Distributed('{cluster}', '{database}', "
                f"'{table}_local', {sharding_key})"
            )
        raise ValueError(f"unknown placeholder ${{{name}}} in a ClickHouse migration")

    without_comments = "\n".join(
        line for line in sql.splitlines() if not line.lstrip().startswith("--")
    )
    rendered = _PLACEHOLDER.sub(substitute, without_comments)
    statements = (s.strip() for s in re.split(r";\s*(?:\n|$)", rendered))
    return [s for s in statements if s]


def bootstrap_statements(*, cluster: str, database: str) -> list[str]:
    """Return the DDL creating the database and the table recording applied migrations."""
    on_cluster = f" ON CLUSTER {_quote(cluster)}" if cluster else ""
    if cluster:
        # One replication group across the cluster ({shard} left out): every node sees the record.
        engine = (
            f"ReplicatedReplacingMergeTree('/clickhouse/tables/{database}/{RECORD_TABLE}', "
            "'{replica}')"
        )
    else:
        engine = "ReplacingMergeTree()"
    return [
        f"CREATE DATABASE IF NOT EXISTS {_quote(database)}{on_cluster}",
        f"CREATE TABLE IF NOT EXISTS {_quote(database)}.{RECORD_TABLE}{on_cluster} "
        f"(name String, applied_at DateTime64(3) DEFAULT now64(3)) "
        f"ENGINE = {engine} ORDER BY name",
    ]


def migrate(*, log: Callable[[str], None] = lambda line: None) -> list[str]:
    """Apply the migrations not yet recorded; return the names applied."""
    cluster, database = settings.CLICKHOUSE_CLUSTER, clickhouse.database_name()
    with clickhouse.session(use_database=False) as client:
        for statement in bootstrap_statements(cluster=cluster, database=database):
            client.command(statement)
    applied_now = []
    with clickhouse.session() as client:
        applied = {row[0] for row in client.query(f"SELECT name FROM {RECORD_TABLE}").result_rows}
        for migration in migrations():
            if migration.name in applied:
                continue
            log(f"Applying ClickHouse migration {migration.name}...")
            for statement in render(migration.sql, cluster=cluster, database=database):
                client.command(statement)
            client.insert(RECORD_TABLE, [[migration.name]], column_names=["name"])
            applied_now.append(migration.name)
    return applied_now
