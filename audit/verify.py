"""`audit_verify`: recompute every chain and hold it against the anchors in object storage.

Reads through the staff read role (every tenant's rows, SELECT only). The first bad row of each
chain is named: changed (its hash), removed or reordered (seq and prev_hash), or rewritten with a
recomputed chain (only an anchor can tell: its hash at that seq differs). A chain an anchor
names but the log no longer holds, or that ends before an anchor's seq, lost its rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from django.db import connections

from audit import anchors, chain
from tenants import db

# The last row each chain exported to Parquet and dropped (audit/retention.py), per chain.
STARTS_SQL = "SELECT chain, last_seq, last_hash FROM audit_retention_cuts"


def audit_verify(
    *, tenant: uuid.UUID | None = None, report: Callable[[str], None] = print
) -> list[chain.Finding]:
    """Check every chain (or one tenant's); return the findings, reporting progress."""
    stored = anchors.anchors_of(str(tenant) if tenant else None)
    findings: list[chain.Finding] = []
    connection = connections[db.ALL_TENANTS_ALIAS]
    with connection.cursor() as cursor:
        cursor.execute(STARTS_SQL)
        starts = {str(c): (seq, digest.strip()) for c, seq, digest in cursor.fetchall()}
        if tenant:
            tenant_ids: list[uuid.UUID | None] = [tenant]
        else:
            cursor.execute(chain.CHAINS_SQL)
            tenant_ids = [row[0] for row in cursor.fetchall()]
        seen = set()
        for index, tenant_id in enumerate(tenant_ids, 1):
            name = chain.chain_name(tenant_id)
            seen.add(name)
            chain_anchors = stored.get(name, [])
            walk = chain.chain_walk(
                tenant_id,
                chain.rows_of(cursor, tenant_id),
                keep=frozenset(a.seq for a in chain_anchors),
                start=starts.get(name),
            )
            findings += walk.findings
            findings += _against_anchors(walk, chain_anchors)
            report(
                f"[{index}/{len(tenant_ids)}] chain {name}: {walk.last_seq} rows checked, "
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


def _against_anchors(walk: chain.ChainWalk, stored: list[anchors.Anchor]) -> list[chain.Finding]:
    broken_at = walk.findings[0].seq if walk.findings else None
    for anchor in sorted(stored, key=lambda a: a.seq):
        if broken_at is not None and anchor.seq >= broken_at:
            break  # the chain's own break is already named
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
