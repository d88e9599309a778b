"""The erasure ledger: one JSON object per erasure in object storage, outside the database.

A restore rewinds PostgreSQL (and an analytics restore re-inserts events) to before some
erasures; backups cannot be rewritten. So every restore path replays the ledger afterwards:
`ledger_replay` for the live database (tenant restore, analytics restore) and
`ledger_replay_cluster` for a restored cluster (PITR restore, drills). Replaying is idempotent:
every step deletes by id and deleting nothing changes nothing.

Entries are `system/erasure-ledger/<tenant-id>/<UTC time>-<uuid>.json` in the backups bucket
(`BACKUP_REPO_BUCKET`, else the documents bucket), beside the backups they correct; only ever
added. With a second region for backups (BACKUP_REPO2_*) every entry is written there too, and
read from whichever region answers: a restore from the second region, with the first lost,
still replays every erasure.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

from django.conf import settings
from django.db import connection

from metis.objectstore import store
from metis.objectstore.errors import STORE_ERRORS
from privacy.erasure import postgres, stores
from privacy.erasure.plan import ErasurePlan
from tenants import db
from tenants.models import Tenant

LEDGER_PREFIX = "system/erasure-ledger/"


def ledger_append(plan: ErasurePlan, *, request_id: str) -> str:
    """Write the plan as a new ledger entry before any store is touched; return its key."""
    now = dt.datetime.now(dt.UTC)
    key = f"{LEDGER_PREFIX}{plan.tenant_id}/{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex}.json"
    entry = {"request_id": request_id, "recorded_at": now.isoformat(), **plan.as_json()}
    for bucket in _ledger_stores():  # both regions, or the erasure fails before any erasing
        bucket.put_bytes(
            key=key, data=json.dumps(entry, indent=1).encode(), content_type="application/json"
        )
    return key


def _ledger_stores() -> list[store.ObjectStore]:
    region2 = store.backups_region2_store()
    return [store.backups_store(), *([region2] if region2 else [])]


def ledger_entries(*, tenant_id: uuid.UUID | str | None = None) -> list[ErasurePlan]:
    """Every plan in the ledger (of one tenant when given), oldest first."""
    if not (settings.BACKUP_REPO_BUCKET or settings.AWS_STORAGE_BUCKET_NAME):
        # No bucket: no erasure could have written an entry (ledger_append needs one), so a
        # restore here has nothing to replay (a scratch cluster for a local backup check).
        return []
    prefix = LEDGER_PREFIX + (f"{tenant_id}/" if tenant_id else "")
    # Every region that answers: an entry is in each (ledger_append), so one region lost
    # loses none; every region down is an error, never an empty ledger.
    where: dict[str, store.ObjectStore] = {}
    failures: list[Exception] = []
    for bucket in _ledger_stores():
        try:
            keys = bucket.keys(prefix)
        except STORE_ERRORS as exc:
            failures.append(exc)
            continue
        for key in keys:
            where.setdefault(key, bucket)
    if failures and not where and len(failures) == len(_ledger_stores()):
        raise failures[0]
    plans = []
    for key in sorted(where, key=lambda k: k.rsplit("/", 1)[-1]):
        raw = where[key].read_bytes(key)
        if raw:
            plans.append(ErasurePlan.from_json(json.loads(raw)))
    return plans


def ledger_replay(
    *, tenant_id: uuid.UUID | str | None = None, events: bool = True, objects: bool = True
) -> dict:
    """Apply the ledger again to the live database (and S3, ClickHouse); return counts.

    An entry point: call it outside any tenant context, after the restore has committed.
    """
    if db.current_tenant_id() is not None:
        raise db.TenantContextError("replay the ledger outside any tenant context")
    present = {str(pk) for pk in Tenant.objects.values_list("pk", flat=True)}
    totals = {"entries": 0, "rows": 0, "sessions": 0, "objects": 0, "export_files": 0, "events": 0}
    for plan in ledger_entries(tenant_id=tenant_id):
        if plan.tenant_id not in present:
            continue
        totals["entries"] += 1
        if objects:
            counted = stores.objects_erase(plan)
            totals["objects"] += counted["versions"] + counted["delete_markers"]
            counted = stores.export_files_erase(plan)
            totals["export_files"] += counted["versions"] + counted["delete_markers"]
        with db.tenant_context(plan.tenant_uuid), connection.cursor() as cursor:
            counts = postgres.rows_erase(cursor, plan)
            totals["sessions"] += stores.sessions_erase(plan)
        totals["rows"] += sum(sum(c.values()) for c in counts.values())
        if events:
            totals["events"] += stores.events_erase(plan)
    return totals


def ledger_replay_cluster(conn) -> dict:
    """Apply the ledger to a restored cluster through `conn` (psycopg, as its owner).

    Only its PostgreSQL rows: the restored cluster shares the live S3 and ClickHouse, where
    the erasures already hold. Tables the restored database lacks (an older schema) are skipped.
    """
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relkind IN ('r', 'p') "
            "AND relnamespace = 'public'::regnamespace"
        )
        tables = {name for (name,) in cursor.fetchall()}
    totals = {"entries": 0, "rows": 0, "sessions": 0}
    for plan in ledger_entries():
        totals["entries"] += 1
        with conn.cursor() as cursor:
            counts = postgres.rows_erase(cursor, plan, tables=tables)
            if "django_session" in tables and plan.user_ids:
                totals["sessions"] += _cluster_sessions_erase(cursor, plan)
        conn.commit()
        totals["rows"] += sum(sum(c.values()) for c in counts.values())
    return totals


def _cluster_sessions_erase(cursor, plan: ErasurePlan) -> int:
    cursor.execute("SELECT session_key, session_data FROM django_session")
    users = set(plan.user_ids)
    doomed = [key for key, data in cursor.fetchall() if stores.session_user(key, data) in users]
    if doomed:
        cursor.execute("DELETE FROM django_session WHERE session_key = ANY(%s)", [doomed])
    return len(doomed)


def ledger_remaining_cluster(conn) -> dict:
    """Count what the ledger's subjects still have in a restored cluster (zero after replay)."""
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relkind IN ('r', 'p') "
            "AND relnamespace = 'public'::regnamespace"
        )
        tables = {name for (name,) in cursor.fetchall()}
        left: dict[str, int] = {}
        for plan in ledger_entries():
            for table, count in postgres.rows_remaining(cursor, plan, tables=tables).items():
                left[table] = left.get(table, 0) + count
    return left
