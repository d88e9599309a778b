"""Retention: export each month past AUDIT_RETENTION_DAYS to Parquet, verify it, then drop it.

For each monthly partition wholly older than the retention period, oldest first:
1. export its rows (as the owner: partitions keep no grant for anyone else) to a Parquet file
   and store it once in object storage (audit/archives.py: Object Lock or versioned);
2. read that stored version back and hold it against the table, row by row, and walk each
   chain through it: the archived rows' hashes recompute, and they link to the previous cut and
   to the rows that stay;
3. in one owner transaction: record each chain's new cut in `audit_retention_cuts` (where
   `audit_verify` resumes) and `DROP TABLE` the partition. The guard triggers do not stop this,
   and cannot: PostgreSQL has no trigger on DETACH or DROP (an event trigger needs a
   superuser). Only the owner may do either; a partition dropped any other way leaves a seq
   gap or an anchor the chain no longer reaches, and `audit_verify` names it.

Whole partitions only. `created_at` is the inserting transaction's start, and seqs are handed
out in insert order, so across a month boundary a chain may have seq 11 in January (a
transaction begun at 23:59:59) after seq 10 in February. Dropping January then drops seq 11 but
keeps seq 10: the cut is the longest dropped prefix (seq 9), and seq 11 is a "bridge" recorded
with its hash, which `chain.chain_walk` crosses to check seq 12's prev_hash.
"""

from __future__ import annotations

import heapq
import json
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone

from audit import archives, chain, recorder
from audit.archived_rows import ArchivedRows
from audit.schema import GENESIS_HASH, SYSTEM_CHAIN

_MONTH_PARTITION = re.compile(r"^audit_log_(\d{4})_(\d{2})$")
_BATCH = 10_000
# Dropping a partition locks the whole log for a moment: wait no longer than this for inserts
# in flight, rather than stall every writer behind the lock queue. The next run tries again.
LOCK_TIMEOUT = "10s"

_PARTITIONS_SQL = """
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'audit_log'::regclass
"""
_COLUMNS = chain.COLUMNS
_CUTS_SQL = "SELECT chain, last_seq, last_hash, bridges::text FROM audit_retention_cuts"
_STAYING_SQL = f"""
SELECT {_COLUMNS} FROM audit_log
WHERE tenant_id IS NOT DISTINCT FROM %s AND seq <= %s AND tableoid <> %s::regclass
ORDER BY seq, id
"""
_CUT_UPSERT_SQL = """
INSERT INTO audit_retention_cuts (chain, last_seq, last_hash, bridges, export_key, cut_at)
VALUES (%s, %s, %s, %s::jsonb, %s, now())
ON CONFLICT (chain) DO UPDATE SET last_seq = excluded.last_seq, last_hash = excluded.last_hash,
    bridges = excluded.bridges, export_key = excluded.export_key, cut_at = excluded.cut_at
"""


class RetentionRefused(RuntimeError):
    """An export did not verify: the partition stays, and the run stops."""


@dataclass(frozen=True)
class Cut:
    chain: str
    last_seq: int
    last_hash: str
    bridges: dict[int, str]


@dataclass(frozen=True)
class PartitionCut:
    partition: str
    rows: int
    key: str
    version_id: str
    cuts: list[Cut]


def partitions_due(now: datetime) -> list[str]:
    """Month partitions whose every row is older than AUDIT_RETENTION_DAYS, oldest first."""
    cutoff = now - timedelta(days=settings.AUDIT_RETENTION_DAYS)
    with connections["owner"].cursor() as cursor:
        cursor.execute(_PARTITIONS_SQL)
        names = [row[0] for row in cursor.fetchall()]
    due = []
    for name in names:
        if match := _MONTH_PARTITION.match(name):
            year, month = int(match[1]), int(match[2])
            ends = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
            if ends <= cutoff:
                due.append(name)
    return sorted(due)


def retention_run(
    *, now: datetime | None = None, report: Callable[[str], None] = print, dry_run: bool = False
) -> list[PartitionCut]:
    """Export, verify and drop every partition past retention; return what was cut."""
    due = partitions_due(now or timezone.now())
    report(f"{len(due)} partition(s) past {settings.AUDIT_RETENTION_DAYS} days: {', '.join(due)}")
    if dry_run:
        return []
    done = []
    for index, partition in enumerate(due, 1):
        done.append(partition_cut(partition, report=_prefixed(report, f"[{index}/{len(due)}] ")))
    return done


def partition_cut(partition: str, *, report: Callable[[str], None] = print) -> PartitionCut:
    """Export one partition, verify the stored copy, record the cuts and drop it."""
    count = _count(partition)
    key = archives.key_of(partition)
    with tempfile.TemporaryDirectory(prefix="audit-retention-") as directory:
        versions = archives.versions_of(partition)
        if not versions:
            path = Path(directory) / f"{partition}.parquet"
            _export(partition, path, count, report)
            versions = [archives.store_once(partition=partition, path=path)]
            report(f"{partition}: stored as {key} (version {versions[0]})")
        elif len(versions) > 1:
            raise RetentionRefused(
                f"{key} has {len(versions)} versions; one run writes one. Compare them "
                "(audit_verify --archives) before anything is dropped."
            )
        else:
            report(f"{partition}: {key} was stored by an earlier run; checking it")
        stored = archives.fetch(key, versions[0], Path(directory))
        _check_copy(partition, stored, count)
        report(f"{partition}: read back, {count} rows match the table")
        cuts = _chain_cuts(partition, stored, report)
    _drop(partition, cuts, key, count)
    report(f"{partition}: dropped; {len(cuts)} chain cut(s) recorded")
    recorder.record(
        action="audit.retention_cut",
        target_type="audit_partition",
        target_id=partition,
        metadata={"rows": count, "key": key, "version": versions[0], "chains": len(cuts)},
    )
    return PartitionCut(partition, count, key, versions[0], cuts)


def _prefixed(report: Callable[[str], None], prefix: str) -> Callable[[str], None]:
    return lambda line: report(prefix + line)


def _count(partition: str) -> int:
    with connections["owner"].cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{partition}"')
        return cursor.fetchone()[0]


def _table_rows(partition: str) -> Iterator[tuple]:
    """The partition's rows in id order, a batch at a time (keyset: no long transaction)."""
    last_id = 0
    with connections["owner"].cursor() as cursor:
        while True:
            cursor.execute(
                f'SELECT {_COLUMNS} FROM "{partition}" WHERE id > %s ORDER BY id LIMIT %s',
                [last_id, _BATCH],
            )
            batch = cursor.fetchall()
            if not batch:
                return
            yield from batch
            last_id = batch[-1][0]


def _export(partition: str, path: Path, count: int, report: Callable[[str], None]) -> None:
    written = 0
    with archives.writer(path) as writer:
        batch: list[tuple] = []
        for row in _table_rows(partition):
            batch.append(row)
            if len(batch) == _BATCH:
                writer.write_batch(archives.batch_of(batch))
                written += len(batch)
                batch = []
                report(f"{partition}: exported {written}/{count} rows ({written * 100 // count}%)")
        if batch or not written:
            writer.write_batch(archives.batch_of(batch))
            written += len(batch)
    report(f"{partition}: exported {written}/{count} rows (100%)")


def _normalised(row: tuple) -> tuple:
    tenant = row[2]
    hashes = (digest.strip() for digest in row[12:])
    return (*row[:2], None if tenant is None else str(tenant), *row[3:12], *hashes)


def _check_copy(partition: str, stored: Path, count: int) -> None:
    """The stored file holds exactly the table's rows, field for field, in id order."""
    read = 0
    table = _table_rows(partition)
    for archived in archives.rows_in(stored):
        read += 1
        row = next(table, None)
        if row is None or _normalised(row) != _normalised(archived):
            raise RetentionRefused(
                f"{partition}: the stored archive's row {read} (id {archived[0]}) differs from "
                f"the table's ({'none' if row is None else f'id {row[0]}'}): nothing dropped"
            )
    if read != count or next(table, None) is not None:
        raise RetentionRefused(
            f"{partition}: the stored archive has {read} rows, the table {count}: nothing dropped"
        )


def _chain_cuts(partition: str, stored: Path, report: Callable[[str], None]) -> list[Cut]:
    """Walk every chain through the archived rows; return each chain's new cut.

    One chain at a time from the archive sorted on disk (audit/archived_rows.py): memory
    holds a chain's out-of-order seqs, not the month."""
    with connections["owner"].cursor() as cursor:
        cursor.execute(_CUTS_SQL)
        previous = {
            str(c): Cut(
                str(c), seq, digest.strip(), {int(k): v for k, v in json.loads(bridges).items()}
            )
            for c, seq, digest, bridges in cursor.fetchall()
        }
        cuts = []
        with (
            tempfile.TemporaryDirectory(prefix="audit-cut-") as directory,
            ArchivedRows([stored], Path(directory)) as archived,
        ):
            for name, last_archived in sorted(archived.last_seqs().items()):
                before = previous.get(name, Cut(name, 0, GENESIS_HASH, {}))
                last_dropped = max([last_archived, *before.bridges])
                tenant_id = None if name == SYSTEM_CHAIN else name
                cursor.execute(_STAYING_SQL, [tenant_id, last_dropped + 1, partition])
                staying = cursor.fetchall()
                run = _DroppedRun(before)
                walk = chain.chain_walk(
                    tenant_id,
                    heapq.merge(run.tap(archived.rows(name)), staying, key=lambda r: (r[1], r[0])),
                    start=(before.last_seq, before.last_hash),
                    bridges=before.bridges,
                )
                if walk.findings or walk.last_seq < last_dropped:
                    problem = walk.findings[0] if walk.findings else f"ends at {walk.last_seq}"
                    raise RetentionRefused(f"{partition}: {problem}: nothing dropped")
                cuts.append(run.cut())
        report(f"{partition}: {len(cuts)} chain(s) walked through the archive, all sound")
    return cuts


class _DroppedRun:
    """The new cut, kept as dropped rows stream by in seq order: the longest run of dropped
    seqs after the previous cut; dropped seqs past a gap wait as bridges."""

    def __init__(self, before: Cut) -> None:
        self.chain = before.chain
        self.seq, self.digest = before.last_seq, before.last_hash
        self.waiting = dict(before.bridges)
        self._advance()

    def tap(self, rows: Iterator[tuple]) -> Iterator[tuple]:
        for row in rows:
            self.waiting[row[1]] = row[13].strip()
            self._advance()
            yield row

    def _advance(self) -> None:
        while self.seq + 1 in self.waiting:
            self.seq += 1
            self.digest = self.waiting.pop(self.seq)

    def cut(self) -> Cut:
        bridges = {s: h for s, h in self.waiting.items() if s > self.seq}
        return Cut(self.chain, self.seq, self.digest, bridges)


def _drop(partition: str, cuts: list[Cut], key: str, count: int) -> None:
    # The parent first, as every statement on the log takes it: no lock-order deadlock.
    with transaction.atomic(using="owner"), connections["owner"].cursor() as cursor:
        cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        cursor.execute("LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE")
        cursor.execute(f'SELECT count(*) FROM "{partition}"')
        if cursor.fetchone()[0] != count:
            raise RetentionRefused(f"{partition}: rows changed since the export: nothing dropped")
        for cut in cuts:
            cursor.execute(
                _CUT_UPSERT_SQL,
                [cut.chain, cut.last_seq, cut.last_hash, json.dumps(cut.bridges), key],
            )
        cursor.execute(f'DROP TABLE "{partition}"')
