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
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TextIO

from django.db import transaction
from django.utils import timezone
from tqdm import tqdm

from documents.models import Document, DocumentVersion
from metis.objectstore import store
from tenants import db

ROOT = "tenants/"


def _bar(stream: TextIO | None, desc: str, total: int | None = None) -> tqdm:
    # Drawn only on a terminal (disable=None): a cron or CI log gets no progress lines.
    # sys.stderr is read per call, not bound as a default, so a swapped stderr is honoured.
    return tqdm(total=total, desc=desc, file=stream or sys.stderr, disable=None)


@dataclass
class Drift:
    objects_without_rows: list[str] = field(default_factory=list)
    rows_without_objects: list[tuple[uuid.UUID, uuid.UUID, int, str]] = field(default_factory=list)
    stale_uploads: list[tuple[str, str]] = field(default_factory=list)  # (key, upload id)

    def __bool__(self) -> bool:
        return bool(self.objects_without_rows or self.rows_without_objects or self.stale_uploads)


def _stored_objects(stream: TextIO | None) -> dict[str, datetime]:
    """Every key under tenants/ with the time of its newest version."""
    found: dict[str, datetime] = {}
    with _bar(stream, "listing object versions") as bar:
        for version in store.documents_store().versions(ROOT):
            key, modified = version["Key"], version["LastModified"]
            found[key] = max(found.get(key, modified), modified)
            bar.update()
    return found


def _stale_uploads(older_than: datetime) -> list[tuple[str, str]]:
    return [
        (upload["Key"], upload["UploadId"])
        for upload in store.documents_store().multipart_uploads(ROOT)
        if upload["Initiated"] <= older_than
    ]


def storage_drift_find(
    *, min_age: timedelta = timedelta(hours=1), stream: TextIO | None = None
) -> Drift:
    """Compare every object under tenants/ with every version row of every tenant.

    Progress bars go to `stream` (default stderr) when it is a terminal.
    """
    older_than = timezone.now() - min_age
    stored = _stored_objects(stream)
    drift = Drift()
    referenced: set[str] = set()
    # Staff read-only mode: the one reader allowed to see every tenant's rows.
    with db.all_tenants_context():
        rows = DocumentVersion.objects.values_list(
            "tenant_id", "document_id", "number", "storage_key"
        ).order_by()
        with _bar(stream, "checking rows") as bar:
            for tenant_id, document_id, number, key in rows.iterator(2000):
                referenced.add(key)
                if key not in stored:
                    drift.rows_without_objects.append((tenant_id, document_id, number, key))
                bar.update()
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


def storage_drift_repair(*, drift: Drift, stream: TextIO | None = None) -> None:
    """Delete orphaned objects, drop rows of missing objects, abort stale multipart uploads.

    Progress bars go to `stream` (default stderr) when it is a terminal.
    """
    documents = store.documents_store()
    with _bar(stream, "deleting objects without rows", len(drift.objects_without_rows)) as bar:
        for key in drift.objects_without_rows:
            documents.purge(key)
            bar.update()
    missing: dict[tuple[uuid.UUID, uuid.UUID], list[int]] = defaultdict(list)
    for tenant_id, document_id, number, _key in drift.rows_without_objects:
        missing[(tenant_id, document_id)].append(number)
    with _bar(stream, "repairing documents without objects", len(missing)) as bar:
        for (tenant_id, document_id), numbers in missing.items():
            # A repair job over every tenant: this loop is its entry point, one context each.
            with db.tenant_context(tenant_id):
                document_versions_drop_missing(
                    tenant_id=tenant_id, document_id=document_id, numbers=numbers
                )
            bar.update()
    with _bar(stream, "aborting stale multipart uploads", len(drift.stale_uploads)) as bar:
        for key, upload_id in drift.stale_uploads:
            documents.multipart_abort(key=key, upload_id=upload_id)
            bar.update()
