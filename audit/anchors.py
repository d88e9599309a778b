"""Each chain's head, anchored daily outside the database, where the application cannot change it.

One JSON object per chain and day, `audit/anchors/<chain>/<day>.json`: {chain, seq, hash, at}.
On a bucket made with S3 Object Lock the object is locked in COMPLIANCE mode for
AUDIT_ANCHOR_LOCK_DAYS: no credential, ours included, can delete it or shorten the lock. Without
Object Lock the bucket must keep versions: a later write adds a version and cannot replace the
first, and `anchors_of()` reads every version, so a forged one sits beside the true one and
disagrees with the chain. (Deleting versions there needs `s3:DeleteObjectVersion`, which the
runtime credentials should not hold: docs/operations.md.)
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connections
from django.utils import timezone

from metis.objectstore import store as objectstore
from tenants import db

PREFIX = "audit/anchors/"
HEADS_SQL = "SELECT chain, seq, hash FROM audit_chain_heads ORDER BY chain"


class AnchorStoreUnsafe(RuntimeError):
    """The anchor bucket has neither Object Lock nor versioning: an anchor could be replaced."""


@dataclass(frozen=True)
class Anchor:
    chain: str
    seq: int
    hash: str
    at: str
    key: str
    version_id: str


def heads() -> list[tuple[str, int, str]]:
    """Every chain's head, read through the staff read role (the runtime role may not)."""
    with connections[db.ALL_TENANTS_ALIAS].cursor() as cursor:
        cursor.execute(HEADS_SQL)
        return [(str(chain), seq, digest.strip()) for chain, seq, digest in cursor.fetchall()]


def anchor_all(*, now: datetime | None = None) -> list[Anchor]:
    """Write today's anchor for every chain; return what was written."""
    now = now or timezone.now()
    store = objectstore.audit_store()
    locked = store.object_lock_enabled()
    if not locked and not store.versioning_enabled():
        raise AnchorStoreUnsafe(
            f"bucket {store.bucket} has neither Object Lock nor versioning: an anchor written "
            "there could be overwritten. Use a bucket made with Object Lock "
            "(AUDIT_ANCHOR_BUCKET) or turn versioning on (manage.py storage_setup does)."
        )
    written = []
    for chain, seq, digest in heads():
        key = f"{PREFIX}{chain}/{now:%Y-%m-%d}.json"
        body = json.dumps(
            {"chain": chain, "seq": seq, "hash": digest, "at": now.isoformat()}, sort_keys=True
        ).encode()
        if locked:
            until = now + timedelta(days=settings.AUDIT_ANCHOR_LOCK_DAYS)
            version = store.put_locked(
                key=key, data=body, content_type="application/json", retain_until=until
            )
        else:
            version = store.put_bytes(key=key, data=body, content_type="application/json")
        written.append(Anchor(chain, seq, digest, now.isoformat(), key, version))
    return written


def anchors_of(chain: str | None = None) -> dict[str, list[Anchor]]:
    """Every stored version of every anchor (of one chain, or all), by chain."""
    store = objectstore.audit_store()
    found: dict[str, list[Anchor]] = defaultdict(list)
    for version in store.versions(PREFIX + (f"{chain}/" if chain else "")):
        data = json.loads(store.read_version(version["Key"], version["VersionId"]))
        anchor = Anchor(
            chain=str(data["chain"]),
            seq=int(data["seq"]),
            hash=str(data["hash"]),
            at=str(data["at"]),
            key=version["Key"],
            version_id=version["VersionId"],
        )
        found[anchor.chain].append(anchor)
    return found
