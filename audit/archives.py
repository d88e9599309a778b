"""The audit log's monthly archives: one Parquet file per dropped partition, in object storage.

`audit/archives/audit_log_YYYY_MM.parquet` holds the partition's rows with exactly the columns
the chain is computed from (chain.ROWS_SQL), so `chain.row_hash` recomputes every hash from the
file alone. Written once, like the anchors: under S3 Object Lock (COMPLIANCE) where the bucket
has it, else into a versioned bucket, where a second write only adds a version and `rows_of_all`
reads every version (a forged copy then repeats the seqs of the true one).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings
from django.utils import timezone

from audit import anchors
from metis.objectstore import store as objectstore

if TYPE_CHECKING:
    from audit.archived_rows import ArchivedRows

PREFIX = "audit/archives/"
CONTENT_TYPE = "application/vnd.apache.parquet"

# chain.ROWS_SQL's columns, in its order: a row read back is the tuple the walk expects.
SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("seq", pa.int64()),
        ("tenant_id", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("action", pa.string()),
        ("actor_type", pa.string()),
        ("actor_id", pa.string()),
        ("target_type", pa.string()),
        ("target_id", pa.string()),
        ("ip_address", pa.string()),
        ("request_id", pa.string()),
        ("metadata", pa.string()),  # jsonb's own text, as the canonical row has it
        ("prev_hash", pa.string()),
        ("hash", pa.string()),
    ]
)


def key_of(partition: str) -> str:
    return f"{PREFIX}{partition}.parquet"


def writer(path: Path) -> pq.ParquetWriter:
    return pq.ParquetWriter(path, SCHEMA, compression="zstd")


def batch_of(rows: list[tuple]) -> pa.RecordBatch:
    if not rows:  # a month with no rows still gets its (empty) archive
        return pa.RecordBatch.from_pylist([], schema=SCHEMA)
    columns: list[list] = [list(column) for column in zip(*rows, strict=True)]
    columns[2] = [None if tenant is None else str(tenant) for tenant in columns[2]]
    return pa.RecordBatch.from_arrays(
        [pa.array(column, type=field.type) for column, field in zip(columns, SCHEMA, strict=True)],
        schema=SCHEMA,
    )


def rows_in(path: Path, *, batch_size: int = 10_000) -> Iterator[tuple]:
    """Every row of an archive file, in file order, as chain.ROWS_SQL tuples."""
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size):
        yield from zip(*(column.to_pylist() for column in batch.columns), strict=True)


def store_once(*, partition: str, path: Path) -> str:
    """Store the archive file (locked or versioned, as anchors are); return its version id."""
    store = objectstore.audit_store()
    key = key_of(partition)
    with open(path, "rb") as file:
        data = file.read()
    if store.object_lock_enabled():
        until = timezone.now() + timedelta(days=settings.AUDIT_ANCHOR_LOCK_DAYS)
        return store.put_locked(key=key, data=data, content_type=CONTENT_TYPE, retain_until=until)
    if not store.versioning_enabled():
        raise anchors.AnchorStoreUnsafe(
            f"bucket {store.bucket} has neither Object Lock nor versioning: an archive written "
            "there could be overwritten. Use a bucket made with Object Lock "
            "(AUDIT_ANCHOR_BUCKET) or turn versioning on (manage.py storage_setup does)."
        )
    return store.put_bytes(key=key, data=data, content_type=CONTENT_TYPE)


def versions_of(partition: str) -> list[str]:
    """The stored version ids of one partition's archive (none before it was exported)."""
    key = key_of(partition)
    return [v["VersionId"] for v in objectstore.audit_store().versions(key) if v["Key"] == key]


def version_counts() -> dict[str, int]:
    """How many versions object storage holds of each archive: one, once it is written."""
    counts: dict[str, int] = {}
    for version in objectstore.audit_store().versions(PREFIX):
        counts[version["Key"]] = counts.get(version["Key"], 0) + 1
    return counts


def fetch(key: str, version_id: str, directory: Path) -> Path:
    """Copy one version of an archive into `directory`; return the file's path."""
    path = directory / f"{Path(key).stem}.{version_id[:16]}.parquet"
    path.write_bytes(objectstore.audit_store().read_version(key, version_id))
    return path


@contextmanager
def all_archived(report: Callable[[str], None] = print) -> Iterator[ArchivedRows]:
    """Every archived row of every version of every archive, readable chain by chain.

    The versions are copied to a temporary folder and sorted on disk there, so memory does not
    grow with the archives (audit/archived_rows.py). A row stored twice identically (the same
    version read through two listings) counts once; a different row under the same seq stays,
    and the walk names the repeat.
    """
    # Imported here: archived_rows reads this module's SCHEMA.
    from audit import archived_rows

    store = objectstore.audit_store()
    versions = [v for v in store.versions(PREFIX) if v["Key"].endswith(".parquet")]
    with tempfile.TemporaryDirectory(prefix="audit-archives-") as directory:
        paths = []
        for index, version in enumerate(versions, 1):
            paths.append(fetch(version["Key"], version["VersionId"], Path(directory)))
            rows = pq.ParquetFile(paths[-1]).metadata.num_rows
            report(f"[archive {index}/{len(versions)}] {version['Key']}: {rows} rows read")
        with archived_rows.ArchivedRows(paths, Path(directory)) as archived:
            yield archived
