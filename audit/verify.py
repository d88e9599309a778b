"""`audit_verify`: recompute every chain and hold it against the anchors in object storage.

Reads through the staff read role (every tenant's rows, SELECT only). The first bad row of each
chain is named: changed (its hash), removed or reordered (seq and prev_hash), or rewritten with a
recomputed chain (only an anchor can tell: its hash at that seq differs). A chain an anchor
names but the log no longer holds, or that ends before an anchor's seq, lost its rows.

Months that retention dropped (audit/retention.py): by default each chain resumes from its cut,
and each cut's archive must be in object storage, written once. With `archives=True` every
version of every archive is read back and each chain is walked from its first row, through the
Parquet files and on into the table, so an archive changed after the cut is named too, and the
anchors from before the cut are checked against it.
"""

from __future__ import annotations

import heapq
import json
import uuid
from collections.abc import Callable

from django.db import connections

from audit import anchors, archives, chain
from audit.archived_rows import ArchivedRows
from audit.schema import SYSTEM_CHAIN
from tenants import db

# The last row each chain exported to Parquet and dropped (audit/retention.py), per chain.
CUTS_SQL = "SELECT chain, last_seq, last_hash, bridges::text, export_key FROM audit_retention_cuts"


def audit_verify(
    *,
    tenant: uuid.UUID | None = None,
    archived: bool = False,
    report: Callable[[str], None] = print,
) -> list[chain.Finding]:
    """Check every chain (or one tenant's), from its cut or, with `archived`, from its first
    row through the archives; return the findings, reporting progress."""
    if not archived:
        return _verify(tenant, None, report)
    with archives.all_archived(report) as from_archives:
        return _verify(tenant, from_archives, report)


def _verify(
    tenant: uuid.UUID | None,
    from_archives: ArchivedRows | None,
    report: Callable[[str], None],
) -> list[chain.Finding]:
    archived = from_archives is not None
    archived_chains = set(from_archives.last_seqs()) if from_archives is not None else set()
    stored = anchors.anchors_of(str(tenant) if tenant else None)
    findings: list[chain.Finding] = []
    connection = connections[db.ALL_TENANTS_ALIAS]
    with connection.cursor() as cursor:
        cursor.execute(CUTS_SQL)
        cuts = {str(row[0]): row[1:] for row in cursor.fetchall()}
        if tenant:
            tenant_ids: list[uuid.UUID | None] = [tenant]
        else:
            cursor.execute(chain.CHAINS_SQL, [SYSTEM_CHAIN])
            tenant_ids = [row[0] for row in cursor.fetchall()]
            known = {chain.chain_name(t) for t in tenant_ids}
            tenant_ids += [_tenant_of(name) for name in sorted(archived_chains - known)]
        if not archived:
            findings += _cut_archives_missing(cuts, tenant)
        seen = set()
        for index, tenant_id in enumerate(tenant_ids, 1):
            name = chain.chain_name(tenant_id)
            seen.add(name)
            chain_anchors = stored.get(name, [])
            keep = frozenset(a.seq for a in chain_anchors)
            cut = cuts.get(name)
            if from_archives is not None:
                rows = heapq.merge(
                    from_archives.rows(name),
                    chain.rows_of(cursor, tenant_id),
                    key=lambda r: (r[1], r[0]),
                )
                keep |= {cut[0]} if cut else set()
                walk = chain.chain_walk(tenant_id, rows, keep=keep)
                findings += walk.findings or _against_cut(walk, cut)
            else:
                walk = chain.chain_walk(
                    tenant_id,
                    chain.rows_of(cursor, tenant_id),
                    keep=keep,
                    start=(cut[0], cut[1].strip()) if cut else None,
                    bridges={int(s): h for s, h in json.loads(cut[2]).items()} if cut else None,
                )
                findings += walk.findings
            findings += _against_anchors(walk, chain_anchors)
            report(
                f"[{index}/{len(tenant_ids)}] chain {name}: {walk.last_seq - walk.cut_seq} rows "
                f"checked{f' after the cut at seq {walk.cut_seq}' if walk.cut_seq else ''}, "
                f"{len(chain_anchors)} anchors, "
                f"{'OK' if not findings or findings[-1].chain != name else 'BROKEN'}"
            )
    for name in sorted(set(stored) - seen):
        if tenant is None or name == str(tenant):
            top = max(stored[name], key=lambda a: a.seq)
            findings.append(
                chain.Finding(name, None, top.seq, f"anchored at {top.at} but no rows remain")
            )
    return findings


def _tenant_of(name: str) -> uuid.UUID | None:
    return None if name == SYSTEM_CHAIN else uuid.UUID(name)


def _cut_archives_missing(cuts: dict, tenant: uuid.UUID | None) -> list[chain.Finding]:
    """Each cut's archive must be stored, once: a cut without one hides dropped rows."""
    findings = []
    versions = archives.version_counts()
    for name, (last_seq, _, _, key) in sorted(cuts.items()):
        if tenant is not None and name != str(tenant):
            continue
        if versions.get(key, 0) != 1:
            findings.append(
                chain.Finding(
                    name,
                    None,
                    last_seq,
                    f"the cut names the archive {key}, which object storage holds in "
                    f"{versions.get(key, 0)} versions (one is written): check with --archives",
                )
            )
    return findings


def _against_cut(walk: chain.ChainWalk, cut: tuple | None) -> list[chain.Finding]:
    """Walked from the first row, the chain must pass through the cut's recorded hash."""
    if cut is None or cut[0] == 0 or walk.hashes.get(cut[0], (0, ""))[1] == cut[1].strip():
        return []
    return [
        chain.Finding(
            walk.chain,
            None,
            cut[0],
            "the archived row differs from the retention cut's record of it",
        )
    ]


def _against_anchors(walk: chain.ChainWalk, stored: list[anchors.Anchor]) -> list[chain.Finding]:
    broken_at = walk.findings[0].seq if walk.findings else None
    for anchor in sorted(stored, key=lambda a: a.seq):
        if broken_at is not None and anchor.seq >= broken_at:
            break  # the chain's own break is already named
        if anchor.seq not in walk.hashes and anchor.seq <= walk.cut_seq:
            continue  # archived and dropped: checked with --archives
        if anchor.seq > walk.last_seq:
            return [
                chain.Finding(
                    walk.chain,
                    None,
                    anchor.seq,
                    f"the anchor of {anchor.at} names seq {anchor.seq}, but the chain ends at "
                    f"{walk.last_seq}: rows removed from its end",
                )
            ]
        row_id, digest = walk.hashes[anchor.seq]
        if digest != anchor.hash:
            return [
                chain.Finding(
                    walk.chain,
                    row_id,
                    anchor.seq,
                    f"does not match the anchor of {anchor.at} ({anchor.key}, version "
                    f"{anchor.version_id}): the chain up to it was rewritten and recomputed",
                )
            ]
    return []
