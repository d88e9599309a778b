"""The other stores of an erasure: sessions, S3 versions, portability ZIPs, ClickHouse events,
cached dashboards and the Parquet exports. Each `*_erase` returns counts; each `*_remaining`
reads the store again and returns what is left (zero everywhere after an erasure).
"""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from django.contrib.sessions.models import Session
from django.core import signing
from django.core.cache import cache, caches

from analytics import clickhouse, dashboards, exports, rollups
from metis.objectstore import prefixes, store
from privacy.erasure.plan import ErasurePlan
from tenants import auth, db

# --- Sessions (PostgreSQL rows and their Redis copies) -----------------------------------------


def session_user(stored_key: str, data: str) -> str | None:
    # tenants.sessions binds the signed data to its row: the salt names the stored key.
    try:
        decoded = signing.loads(
            data, salt=f"tenants.sessions.{stored_key}", serializer=signing.JSONSerializer
        )
    except (signing.BadSignature, ValueError):
        return None
    return decoded.get(auth.USER_KEY)


def _sessions_of(plan: ErasurePlan) -> list[str]:
    users = set(plan.user_ids)
    if not users:
        return []
    rows = Session.objects.values_list("session_key", "session_data").iterator()
    return [key for key, data in rows if session_user(key, data) in users]


def sessions_erase(plan: ErasurePlan) -> int:
    """Delete the subject's sessions, row and Redis copy: they are signed out everywhere."""
    keys = _sessions_of(plan)
    if keys:
        Session.objects.filter(session_key__in=keys).delete()
        caches["sessions"].delete_many([f"tenants.sessions.hashed:{key}" for key in keys])
    return len(keys)


def sessions_remaining(plan: ErasurePlan) -> int:
    cached = caches["sessions"]
    keys = _sessions_of(plan)
    left = [k for k in keys if cached.get(f"tenants.sessions.hashed:{k}") is not None]
    return len(keys) + len(left)


# --- S3: every version and delete marker ------------------------------------------------------


def _checked(plan: ErasurePlan) -> list[str]:
    for prefix in plan.object_prefixes:
        if not prefixes.key_belongs_to_tenant(prefix, plan.tenant_uuid):
            raise ValueError(f"{prefix} is outside the tenant's storage")
    return plan.object_prefixes


def objects_erase(plan: ErasurePlan) -> dict:
    versions, markers = store.documents_store().purge_prefixes(_checked(plan))
    return {"versions": versions, "delete_markers": markers, "folders": len(plan.object_prefixes)}


def objects_remaining(plan: ErasurePlan) -> int:
    return len(store.documents_store().version_entries_many(_checked(plan)))


# --- The DR bucket: the copies of the same versions (documents/replication.py) -----------------


def dr_objects_erase(plan: ErasurePlan) -> dict:
    """Delete every version and delete marker in the DR bucket under the subject's folders,
    and of their export ZIPs (S3 replication on AWS copies everything under `tenants/`)."""
    dr = store.documents_dr_store()
    if dr is None:
        return {"versions": 0, "delete_markers": 0}
    versions, markers = dr.purge_prefixes(_checked(plan))
    for key in _export_keys(plan):
        for entry in _versions_of(key, dr):
            dr.client.delete_object(Bucket=dr.bucket, Key=key, VersionId=entry["VersionId"])
            markers += entry["IsDeleteMarker"]
            versions += not entry["IsDeleteMarker"]
    return {"versions": versions, "delete_markers": markers}


def dr_objects_remaining(plan: ErasurePlan) -> int:
    dr = store.documents_dr_store()
    if dr is None:
        return 0
    left = len(dr.version_entries_many(_checked(plan)))
    return left + sum(len(_versions_of(key, dr)) for key in _export_keys(plan))


# --- Portability exports: the ZIPs under tenants/{id}/exports/ -----------------------------------


def _export_keys(plan: ErasurePlan) -> list[str]:
    for key in plan.export_keys:
        if not prefixes.key_belongs_to_tenant(key, plan.tenant_uuid):
            raise ValueError(f"{key} is outside the tenant's storage")
    return plan.export_keys


def _versions_of(key: str, where: store.ObjectStore | None = None) -> list[dict]:
    # Listing by prefix also finds `key` + anything longer: keep exactly this key's entries.
    where = where or store.documents_store()
    return [e for e in where.version_entries(key) if e["Key"] == key]


def export_files_erase(plan: ErasurePlan) -> dict:
    """Delete every version and delete marker of each export ZIP holding the subject."""
    documents = store.documents_store()
    versions = markers = 0
    for key in _export_keys(plan):
        entries = _versions_of(key)
        for entry in entries:
            documents.client.delete_object(
                Bucket=documents.bucket, Key=key, VersionId=entry["VersionId"]
            )
        markers += sum(1 for entry in entries if entry["IsDeleteMarker"])
        versions += sum(1 for entry in entries if not entry["IsDeleteMarker"])
    return {"files": len(plan.export_keys), "versions": versions, "delete_markers": markers}


def export_files_remaining(plan: ErasurePlan) -> int:
    return sum(len(_versions_of(key)) for key in _export_keys(plan))


# --- ClickHouse events ------------------------------------------------------------------------


def _event_filter(plan: ErasurePlan) -> tuple[str, dict]:
    conditions, parameters = [], {"tenant": plan.tenant_id}
    if plan.user_ids:
        conditions.append("user_id IN {users:Array(UUID)}")
        parameters["users"] = plan.user_ids
    if plan.document_ids:
        conditions.append(
            "JSONExtractString(event_data, 'document_id') IN {documents:Array(String)}"
        )
        parameters["documents"] = plan.document_ids
    where = "tenant_id = {tenant:UUID} AND (" + " OR ".join(conditions or ["0"]) + ")"
    return where, parameters


def events_count(client, plan: ErasurePlan) -> int:
    where, parameters = _event_filter(plan)
    return client.query(
        f"SELECT count() FROM events WHERE {where}", parameters=parameters
    ).result_rows[0][0]


def events_erase(plan: ErasurePlan) -> int:
    """Delete the subject's events with a mutation and wait for it: the rows are rewritten out
    of every part, not masked (a lightweight DELETE masks until a merge). Then correct the
    dashboards' hourly rollup, which a deletion does not reach (its view sees only inserts), so
    the erased events stop counting. Return rows deleted."""
    if plan.is_empty():
        return 0
    where, parameters = _event_filter(plan)
    with clickhouse.session() as client:
        found = events_count(client, plan)
        if found:
            client.command(
                f"ALTER TABLE events DELETE WHERE {where} SETTINGS mutations_sync = 2",
                parameters=parameters,
            )
        # Even with nothing left to delete: a run that died between the two steps is repaired.
        rollups.events_rollup_reconcile(tenant_id=plan.tenant_uuid, client=client)
    return found


def events_remaining(plan: ErasurePlan) -> int:
    if plan.is_empty():
        return 0
    with clickhouse.session() as client:
        return events_count(client, plan)


# --- Cached dashboards ------------------------------------------------------------------------

_DASHBOARD_KEYS = "analytics:dashboard:*"


def _dashboard_keys() -> list[str]:
    finder = getattr(cache, "keys", None)  # django-redis; the file cache cannot list keys
    return list(finder(_DASHBOARD_KEYS)) if finder else []


def caches_erase(plan: ErasurePlan) -> int:
    """Drop the tenant's cached dashboards and the all-tenants ones (they count the subject's
    events), and move both generations on so nothing cached before is read again."""
    dropped = 0
    with db.tenant_context(plan.tenant_uuid, atomic=False):
        dropped += len(_dashboard_keys())
        if hasattr(cache, "delete_pattern"):
            cache.delete_pattern(_DASHBOARD_KEYS)
    dropped += len(_dashboard_keys())
    if hasattr(cache, "delete_pattern"):
        cache.delete_pattern(_DASHBOARD_KEYS)
    dashboards.invalidate(plan.tenant_uuid)
    return dropped


def caches_remaining(plan: ErasurePlan) -> int:
    with db.tenant_context(plan.tenant_uuid, atomic=False):
        left = len(_dashboard_keys())
    return left + len(_dashboard_keys())


# --- Parquet exports --------------------------------------------------------------------------

# Which rows of each exported table are the subject's, and which columns name an erased user.
_ROW_IDS = {"users": "user_ids", "documents": "document_ids"}
_USER_COLUMNS = {"documents": ["uploaded_by_id"]}


def _export_files() -> list[str]:
    return [
        key
        for key in store.documents_store().keys(exports.EXPORT_PREFIX)
        if key.rsplit("/", 1)[-1] in {f"{name}.parquet" for name in _ROW_IDS}
    ]


def _without_subject(table: pa.Table, name: str, plan: ErasurePlan) -> tuple[pa.Table, int]:
    doomed = pa.array(getattr(plan, _ROW_IDS[name]), pa.string())
    keep = pc.invert(pc.is_in(table.column("id"), value_set=doomed))
    kept = table.filter(keep)
    users = pa.array(plan.user_ids, pa.string())
    for column in _USER_COLUMNS.get(name, []):
        values = kept.column(column)
        cleared = pc.if_else(pc.is_in(values, value_set=users), None, values)
        kept = kept.set_column(kept.schema.get_field_index(column), column, cleared)
    return kept, table.num_rows - kept.num_rows


def _rows_naming(table: pa.Table, name: str, plan: ErasurePlan) -> int:
    found = (
        pc.sum(
            pc.is_in(
                table.column("id"), value_set=pa.array(getattr(plan, _ROW_IDS[name]), pa.string())
            )
        ).as_py()
        or 0
    )
    for column in _USER_COLUMNS.get(name, []):
        users = pa.array(plan.user_ids, pa.string())
        found += pc.sum(pc.is_in(table.column(column), value_set=users)).as_py() or 0
    return found


def exports_erase(plan: ErasurePlan) -> dict:
    """Rewrite every export file that holds the subject, then delete its earlier versions (the
    old bytes would stay behind a versioned key), and correct the manifests' row counts."""
    documents = store.documents_store()
    rewritten = rows = 0
    for key in _export_files():
        name = key.rsplit("/", 1)[-1].removesuffix(".parquet")
        table = pq.read_table(io.BytesIO(documents.read_bytes(key) or b""))
        if not _rows_naming(table, name, plan):
            continue
        kept, removed = _without_subject(table, name, plan)
        buffer = io.BytesIO()
        pq.write_table(kept, buffer, compression="zstd")
        new_version = documents.put_bytes(
            key=key, data=buffer.getvalue(), content_type=exports.PARQUET
        )
        _drop_other_versions(key, keep=new_version)
        _manifests_correct(key, name, kept.num_rows)
        rewritten += 1
        rows += removed
    return {"files_rewritten": rewritten, "rows": rows}


def _drop_other_versions(key: str, *, keep: str) -> None:
    if not keep:  # an unversioned bucket replaced the object in place
        return
    documents = store.documents_store()
    for entry in list(documents.version_entries(key)):
        if entry["Key"] == key and entry["VersionId"] != keep:
            documents.client.delete_object(
                Bucket=documents.bucket, Key=key, VersionId=entry["VersionId"]
            )


def _manifests_correct(key: str, name: str, rows: int) -> None:
    documents = store.documents_store()
    run_folder = key.rsplit("/", 1)[0]
    for manifest_key in (f"{run_folder}/manifest.json", exports.LATEST_KEY):
        raw = documents.read_bytes(manifest_key)
        if not raw:
            continue
        manifest = json.loads(raw)
        table = manifest.get("tables", {}).get(name)
        if table is None or table.get("key") != key:
            continue
        table["rows"] = rows
        data = json.dumps(manifest, indent=2).encode()
        version = documents.put_bytes(key=manifest_key, data=data, content_type="application/json")
        _drop_other_versions(manifest_key, keep=version)


def exports_remaining(plan: ErasurePlan) -> int:
    """Rows naming the subject in any stored version of any export file."""
    documents = store.documents_store()
    found = 0
    for key in _export_files():
        name = key.rsplit("/", 1)[-1].removesuffix(".parquet")
        for entry in documents.version_entries(key):
            if entry["Key"] != key or entry["IsDeleteMarker"]:
                continue
            body = documents.client.get_object(
                Bucket=documents.bucket, Key=key, VersionId=entry["VersionId"]
            )["Body"].read()
            found += _rows_naming(pq.read_table(io.BytesIO(body)), name, plan)
    return found
