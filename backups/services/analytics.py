"""Back up the ClickHouse `events` table as one encrypted Parquet file per partition.

Takes any clickhouse-connect client (the embedded chdb one or a server), so it works where
`BACKUP ... TO S3` is unavailable (chdb has no backups.allowed_path). Restoring inserts the
Parquet back; materialized columns (created_date) are recomputed by ClickHouse.
"""

from __future__ import annotations

from collections.abc import Callable

from django.utils import timezone

from backups import artifacts, crypto
from backups.models import BackupKind, BackupRun, JobStatus
from backups.services import runs
from privacy.erasure import ledger


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def backup_run_analytics(
    *, client, table: str = "events", on_progress: Callable[[float], None] | None = None
) -> BackupRun:
    """Export every partition of `table` to Parquet in object storage; return the catalog row."""
    key_bytes = crypto.key_from_settings()
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    with runs.job_run_exclusive(
        BackupRun, lock="analytics-backup", kind=BackupKind.ANALYTICS, label=stamp
    ) as run:
        partitions = [
            row[0]
            for row in client.query(
                f"SELECT DISTINCT _partition_id FROM {table} ORDER BY 1"
            ).result_rows
        ]
        files, total, rows_total = {}, 0, 0
        for index, partition in enumerate(partitions, start=1):
            where = f"_partition_id = {_quote(partition)}"
            rows = client.query(f"SELECT count() FROM {table} WHERE {where}").result_rows[0][0]
            parquet = client.raw_query(f"SELECT * FROM {table} WHERE {where} FORMAT Parquet")
            key = artifacts.key_for("analytics", table, stamp, f"{partition}.parquet.enc")
            _location, size, checksum = artifacts.object_put_stream(
                key, crypto.encrypt_stream([parquet], key_bytes)
            )
            files[partition] = {"key": key, "rows": rows, "bytes": size, "checksum": checksum}
            total += size
            rows_total += rows
            if on_progress:
                on_progress(100.0 * index / len(partitions))
        runs.job_succeed(
            run,
            location=artifacts.key_for("analytics", table, stamp),
            stored_bytes=total,
            details={"table": table, "partitions": files, "rows": rows_total},
        )
    return run


def analytics_restore(*, run: BackupRun, client, table: str | None = None) -> int:
    """Insert every exported partition into `table` (default: the one exported); return rows."""
    if run.kind != BackupKind.ANALYTICS or run.status != JobStatus.SUCCEEDED:
        raise ValueError(f"{run} is not a finished analytics backup")
    table = table or run.details["table"]
    key_bytes = crypto.key_from_settings()
    restored = 0
    for partition in run.details["partitions"].values():
        body = artifacts.object_open(partition["key"])
        try:
            parquet = b"".join(crypto.decrypt_stream(body.read, key_bytes))
        finally:
            body.close()
        client.raw_insert(table, insert_block=parquet, fmt="Parquet")
        restored += partition["rows"]
    # The backup may predate erasures: delete their events again.
    ledger.ledger_replay(objects=False)
    runs.restore_tested_mark(run)
    return restored
