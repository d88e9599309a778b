"""Recompute the hash chains in Python, independently of the database's own trigger.

The canonical row is the one `metis_audit_canonical()` builds (audit/schema.py): each field as
"<length>:<text>;", NULL as "-;", and `hash = sha256(prev_hash || canonical)`. A chain checks
out when its seqs run 1, 2, 3… without a gap, each row's prev_hash is the hash before it, and
each hash is the row's own. The anchors (audit/anchors.py) then catch what this cannot: a tail
rewritten with a recomputed chain.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from audit.schema import GENESIS_HASH, SYSTEM_CHAIN

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Columns in canonical order; metadata is read as the database's own jsonb text.
COLUMNS = (
    "id, seq, tenant_id, created_at, action, actor_type, actor_id, target_type, target_id, "
    "ip_address, request_id, metadata::text, prev_hash, hash"
)
ROWS_SQL = f"""
SELECT {COLUMNS}
FROM audit_log
WHERE tenant_id IS NOT DISTINCT FROM %s
ORDER BY seq, id
"""
# Every chain: those with rows, and those whose rows retention has all exported and dropped.
CHAINS_SQL = """
SELECT DISTINCT tenant_id FROM audit_log
UNION SELECT nullif(chain, %s::uuid) FROM audit_retention_cuts
"""


def _field(value: object) -> str:
    if value is None:
        return "-;"
    text = str(value)
    return f"{len(text)}:{text};"


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def row_hash(prev_hash: str, row: tuple) -> str:
    """Return the hash the trigger gives `row` (ROWS_SQL's columns) after `prev_hash`."""
    (_, seq, tenant_id, created_at, *fields) = row[:12]
    canonical = _field(seq) + _field(tenant_id) + _field(_micros(created_at))
    canonical += "".join(_field(value) for value in fields)
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


@dataclass(frozen=True)
class Finding:
    chain: str
    row_id: int | None
    seq: int | None
    problem: str

    def __str__(self) -> str:
        where = f"row id {self.row_id} (seq {self.seq})" if self.row_id else f"seq {self.seq}"
        return f"chain {self.chain}: {where}: {self.problem}"


@dataclass
class ChainWalk:
    """What one chain's rows say: the hash at each seq, and the first finding, if any."""

    chain: str
    hashes: dict[int, tuple[int, str]] = field(default_factory=dict)  # seq → (row id, hash)
    last_seq: int = 0
    findings: list[Finding] = field(default_factory=list)
    # Rows up to this seq were exported and dropped (the retention cut): none here to check.
    cut_seq: int = 0


def chain_name(tenant_id: uuid.UUID | str | None) -> str:
    return str(tenant_id) if tenant_id else SYSTEM_CHAIN


def chain_walk(
    tenant_id: uuid.UUID | None,
    rows: Iterable[tuple],
    *,
    keep: frozenset[int] = frozenset(),
    start: tuple[int, str] | None = None,
    bridges: dict[int, str] | None = None,
) -> ChainWalk:
    """Walk one chain's rows in seq order, keeping the hashes at the `keep` seqs (the anchors');
    `start` is (seq, hash) of the last row retention exported and dropped, when the chain no
    longer begins at 1; `bridges` ({seq: hash}) are rows past `start` it dropped too, because
    their month's partition went while a row before them, stamped in the next month, stayed."""
    walk = ChainWalk(chain_name(tenant_id))
    expected_seq, expected_prev = (start[0] + 1, start[1]) if start else (1, GENESIS_HASH)
    walk.last_seq = walk.cut_seq = expected_seq - 1
    if start and start[0] in keep:
        walk.hashes[start[0]] = (0, start[1])
    bridges = bridges or {}

    def cross_bridges(until: int | None) -> None:
        nonlocal expected_seq, expected_prev
        while expected_seq in bridges and (until is None or expected_seq < until):
            expected_prev = bridges[expected_seq]
            if expected_seq in keep:
                walk.hashes[expected_seq] = (0, expected_prev)
            walk.last_seq, expected_seq = expected_seq, expected_seq + 1

    for row in rows:
        row_id, seq, prev_hash, stored = row[0], row[1], row[12].strip(), row[13].strip()
        cross_bridges(seq)
        problem = None
        if seq != expected_seq:
            problem = (
                f"seq {seq} where {expected_seq} was due: rows removed or reordered"
                if seq > expected_seq
                else f"seq {seq} repeated or out of order (expected {expected_seq})"
            )
        elif prev_hash != expected_prev:
            problem = "prev_hash is not the hash of the row before: rows removed or reordered"
        elif row_hash(prev_hash, row) != stored:
            problem = "content changed: the row's hash does not match its fields"
        if problem:
            walk.findings.append(Finding(walk.chain, row_id, seq, problem))
            return walk
        if seq in keep:
            walk.hashes[seq] = (row_id, stored)
        walk.last_seq, expected_seq, expected_prev = seq, seq + 1, stored
    cross_bridges(None)
    return walk


def rows_of(cursor, tenant_id) -> Iterator[tuple]:
    cursor.execute(ROWS_SQL, [tenant_id])
    while batch := cursor.fetchmany(2000):
        yield from batch
