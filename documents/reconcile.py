"""Find and repair drift between the object store and the database.

Three kinds, all under `tenants/`:
- objects without rows: an upload whose rows never committed and whose clean-up also failed
  (the store was down). Repair deletes every version of the object. Objects younger than
  `min_age` are left alone: their upload may still be about to commit.
- rows without objects: a DocumentVersion whose key is gone from the store. Repair deletes
  those version rows; a document left without any version is soft-deleted and marked
  `metadata["object_missing"]`, so nothing offers a download of bytes that do not exist, while
  its access log (an append-only audit trail) stays intact.
- multipart uploads never completed or aborted (a client that gave up): repair aborts them.
"""

from __future__ import annotations

import sys
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from documents.models import Document, DocumentVersion
from metis.objectstore import store
from tenants import db

ROOT = "tenants/"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class Drift:
    objects_without_rows: list[str] = field(default_factory=list)
    rows_without_objects: list[tuple[uuid.UUID, uuid.UUID, int, str]] = field(default_factory=list)
    stale_uploads: list[tuple[str, str]] = field(default_factory=list)  # (key, upload id)

    def __bool__(self) -> bool:
        return bool(self.objects_without_rows or self.rows_without_objects or self.stale_uploads)


def _stored_objects(progress: Callable[[str], None]) -> dict[str, datetime]:
    """Every key under tenants/ with the time of its newest version."""
    found: dict[str, datetime] = {}
    for count, version in enumerate(store.documents_store().versions(ROOT), 1):
        key, modified = version["Key"], version["LastModified"]
        found[key] = max(found.get(key, modified), modified)
        if count % 1000 == 0:
            progress(f"listing objects: {len(found):,}")
    progress(f"listing objects: {len(found):,}")
    return found


def _stale_uploads(older_than: datetime) -> list[tuple[str, str]]:
    return [
        (upload["Key"], upload["UploadId"])
        for upload in store.documents_store().multipart_uploads(ROOT)
        if upload["Initiated"] <= older_than
    ]


def storage_drift_find(
    *, min_age: timedelta = timedelta(hours=1), progress: Callable[[str], None] = _stderr
) -> Drift:
    """Compare every object under tenants/ with every version row of every tenant."""
    older_than = timezone.now() - min_age
    stored = _stored_objects(progress)
    drift = Drift()
    referenced: set[str] = set()
    # Staff read-only mode: the one reader allowed to see every tenant's rows.
    with db.all_tenants_context():
        rows = DocumentVersion.objects.values_list(
            "tenant_id", "document_id", "number", "storage_key"
        ).order_by()
        for count, (tenant_id, document_id, number, key) in enumerate(rows.iterator(2000), 1):
            referenced.add(key)
            if key not in stored:
                drift.rows_without_objects.append((tenant_id, document_id, number, key))
            if count % 10_000 == 0:
                progress(f"checking rows: {count:,}")
    drift.objects_without_rows = sorted(
        key for key, modified in stored.items() if key not in referenced and modified <= older_than
    )
    drift.stale_uploads = _stale_uploads(older_than)
    return drift


def document_versions_drop_missing(
    *, tenant_id: uuid.UUID, document_id: uuid.UUID, numbers: list[int]
) -> Document:
    """Forget versions whose objects are gone; fall back to the newest remaining version."""
    db.require_tenant_context(tenant_id)
    with transaction.atomic():
        document = Document.objects.for_tenant(tenant_id).select_for_update().get(pk=document_id)
        versions = DocumentVersion.objects.for_tenant(tenant_id).filter(document=document)
        lost_keys = list(versions.filter(number__in=numbers).values_list("storage_key", flat=True))
        versions.filter(number__in=numbers).delete()
        newest = versions.order_by("-number").first()
        if newest is not None and document.storage_key in lost_keys:
            for name in ("original_filename", "content_type", "size_bytes", "sha256"):
                setattr(document, name, getattr(newest, name))
            document.storage_key, document.version_id = newest.storage_key, newest.version_id
        elif newest is None:
            document.deleted_at = document.deleted_at or timezone.now()
            document.metadata = {
                **document.metadata,
                "object_missing": {"since": timezone.now().isoformat(), "keys": lost_keys},
            }
        document.save()
    return document


def storage_drift_repair(*, drift: Drift, progress: Callable[[str], None] = _stderr) -> None:
    """Delete orphaned objects, drop rows of missing objects, abort stale multipart uploads."""
    documents = store.documents_store()
    total = len(drift.objects_without_rows)
    for done, key in enumerate(drift.objects_without_rows, 1):
        documents.purge(key)
        progress(f"deleting objects without rows: {done}/{total}")
    missing: dict[tuple[uuid.UUID, uuid.UUID], list[int]] = defaultdict(list)
    for tenant_id, document_id, number, _key in drift.rows_without_objects:
        missing[(tenant_id, document_id)].append(number)
    for done, ((tenant_id, document_id), numbers) in enumerate(missing.items(), 1):
        # A repair job over every tenant: this loop is its entry point, one context per document.
        with db.tenant_context(tenant_id):
            document_versions_drop_missing(
                tenant_id=tenant_id, document_id=document_id, numbers=numbers
            )
        progress(f"repairing documents without objects: {done}/{len(missing)}")
    for key, upload_id in drift.stale_uploads:
        documents.multipart_abort(key=key, upload_id=upload_id)
    if drift.stale_uploads:
        progress(f"aborted {len(drift.stale_uploads)} stale multipart upload(s)")
