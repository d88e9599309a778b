"""Exports: request one, build it (a Celery task), hand out its link, delete it when due."""

from __future__ import annotations

import datetime as dt
import hashlib
import tempfile
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from analytics.clickhouse import ClickHouseUnavailable
from metis.events import recorder
from metis.objectstore import prefixes
from metis.objectstore import store as object_store
from metis.objectstore.errors import STORE_ERRORS, StorageUnavailable
from privacy.exports import archive, event_types, rows
from privacy.exports.models import Export, ExportScope, ExportStatus
from tenants import db
from tenants.models import TenantUser

# Write progress to the row at most this often (and on every whole percent), so a large
# export's bar moves without a write per chunk.
PROGRESS_EVERY_SECONDS = 2.0
# The build task's hard limit; an export queued or running longer than this (plus a margin
# for the queue) lost its worker or its message and is failed by the hourly sweep.
BUILD_TIME_LIMIT_SECONDS = 2 * 3600 + 10 * 60
STALLED_AFTER = dt.timedelta(seconds=BUILD_TIME_LIMIT_SECONDS + 20 * 60)
ROWS_AND_FILES_DONE = archive.ROWS_SHARE + archive.FILES_SHARE


class ExportRefused(PermissionError):
    """The requester may not export this subject (only tenant admins export others)."""


class ExportNotReady(RuntimeError):
    """The export has no file to download (still running, failed, or deleted)."""


def export_key(*, tenant_id: uuid.UUID | str, export_id: uuid.UUID | str) -> str:
    return f"{prefixes.tenant_prefix(tenant_id)}exports/{uuid.UUID(str(export_id))}.zip"


@db.tenant_context_required(tenant="requested_by")
def export_request(
    *,
    requested_by: TenantUser,
    scope: str,
    subject_user: TenantUser | None = None,
    subject_ref: str = "",
) -> Export:
    """Record an export of a subject's data and queue its build; return the row.

    Anyone may export their own data; only a tenant admin may export another user, a
    borrower or the whole tenant. Raise ExportRefused otherwise, ValueError for a bad subject.
    """
    scope = ExportScope(scope)
    subject_ref = subject_ref.strip()
    if scope == ExportScope.USER:
        subject_user = subject_user or requested_by
        if subject_user.tenant_id != requested_by.tenant_id:
            raise ValueError("no such user in this tenant")
        subject_ref = ""
    elif scope == ExportScope.BORROWER:
        if not subject_ref:
            raise ValueError("a borrower export needs a subject reference")
        subject_user = None
    else:
        subject_user, subject_ref = None, ""
    if not requested_by.is_admin and subject_user != requested_by:
        raise ExportRefused("only a tenant admin may export another subject's data")
    with transaction.atomic():
        export = Export.objects.create(
            tenant_id=requested_by.tenant_id,
            scope=scope,
            subject_user=subject_user,
            subject_ref=subject_ref,
            requested_by=requested_by,
        )
        recorder.record_event(
            tenant=requested_by.tenant_id,
            event_type=event_types.REQUESTED,
            data={"export_id": str(export.pk), "scope": scope.value},
            user=requested_by,
        )
        # Imported here: the task module calls back into this one.
        from privacy.exports import tasks
        from tenants.tasks import enqueue_for_tenant

        enqueue_for_tenant(tasks.export_build, requested_by.tenant_id, export_id=str(export.pk))
    return export


class _ProgressWriter:
    """Write an export's percent and stage to its row, committed, so pages see it move."""

    def __init__(self, export: Export) -> None:
        self.export = export
        self.percent = -1.0
        self.at = 0.0

    def __call__(self, percent: float, note: str) -> None:
        now = time.monotonic()
        if int(percent) == int(self.percent) and now - self.at < PROGRESS_EVERY_SECONDS:
            return
        self.percent, self.at = percent, now
        Export.objects.filter(pk=self.export.pk, status=ExportStatus.RUNNING).update(
            progress_percent=round(percent, 1), progress_note=note[:255]
        )


def _subject_of(export: Export) -> rows.Subject:
    if export.scope == ExportScope.USER and export.subject_user_id is None:
        raise ValueError("the subject of this export no longer exists")
    return rows.Subject(scope=export.scope, user_id=export.subject_user_id, ref=export.subject_ref)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(archive.CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# The states a build may move on from; an export erased or deleted meanwhile is never
# brought back (an erasure marks a running export `erased` under the build's feet).
BUILDABLE = [ExportStatus.QUEUED, ExportStatus.RUNNING, ExportStatus.FAILED]


def _fail(export: Export, message: str) -> Export:
    Export.objects.filter(pk=export.pk, status__in=BUILDABLE).update(
        status=ExportStatus.FAILED, error=message, finished_at=timezone.now()
    )
    export.refresh_from_db()
    return export


def _discard(export: Export, key: str) -> Export:
    """Delete a ZIP whose export was erased while it was built, verified by listing."""
    object_store.documents_store().purge(key)
    if _object_versions_left(key):
        raise StorageUnavailable(f"{key} still has versions after deletion")
    export.refresh_from_db()
    return export


def export_build(*, export_id: uuid.UUID | str) -> Export:
    """Build the export's ZIP, store it, and mark the row ready; return the row.

    Runs in the tenant's scope without one transaction (its caller's task opens it so), since
    it streams from and to S3 between its writes. A ready or deleted export is left alone, so a
    redelivered message does nothing; a failed or interrupted one is built again from scratch.
    """
    tenant_id = db.require_tenant_context()
    export = Export.objects.for_tenant(tenant_id).get(pk=export_id)
    started = Export.objects.filter(pk=export.pk, status__in=BUILDABLE).update(
        status=ExportStatus.RUNNING,
        started_at=timezone.now(),
        progress_percent=0,
        progress_note="starting",
        error="",
    )
    if not started:  # ready, expired or erased: a redelivered message does nothing
        return export
    progress = _ProgressWriter(export)
    key = export_key(tenant_id=tenant_id, export_id=export.pk)
    try:
        subject = _subject_of(export)
    except ValueError as exc:
        return _fail(export, str(exc))
    with tempfile.TemporaryDirectory(prefix="metis-export-") as folder:
        path = Path(folder) / "export.zip"
        try:
            summary = archive.archive_to_path(
                path, export_id=str(export.pk), subject=subject, on_progress=progress
            )
            progress(ROWS_AND_FILES_DONE, "storing the archive")
            sha256, size = _sha256_of(path), path.stat().st_size
            db.connection_release()
            version_id = object_store.documents_store().put_file(
                key=key, path=str(path), content_type="application/zip"
            )
        except (StorageUnavailable, *STORE_ERRORS) as exc:
            return _fail(export, f"The object store failed; try again later. ({exc})")
        except ClickHouseUnavailable as exc:
            return _fail(export, f"The events store is not reachable; try again later. ({exc})")
        except BaseException as exc:
            # Never left "running" forever; the task's retry (if the error is transient)
            # builds it again from scratch.
            _fail(export, f"The export failed: {type(exc).__name__}")
            raise
    finished = timezone.now()
    stored = Export.objects.filter(pk=export.pk, status=ExportStatus.RUNNING).update(
        status=ExportStatus.READY,
        progress_percent=100,
        progress_note="ready",
        object_key=key,
        version_id=version_id,
        size_bytes=size,
        sha256=sha256,
        summary=summary.as_json(),
        finished_at=finished,
        expires_at=finished + dt.timedelta(days=settings.EXPORT_RETENTION_DAYS),
    )
    if not stored:
        # Its subject was erased while the ZIP was built: the file may hold erased data.
        return _discard(export, key)
    export.refresh_from_db()
    return export


@db.tenant_context_required(tenant="export")
def export_link(*, export: Export, user: TenantUser) -> str:
    """Return a presigned link to the export's file, valid EXPORT_LINK_SECONDS; record it.

    Raise ExportNotReady when there is no file. Callers check who may see the export.
    """
    if not export.is_ready() or not export.object_key:
        raise ExportNotReady(f"export {export.pk} is {export.get_status_display().lower()}")
    recorder.record_event(
        tenant=export.tenant_id,
        event_type=event_types.DOWNLOADED,
        data={"export_id": str(export.pk), "scope": export.scope},
        user=user,
    )
    db.connection_release()
    return object_store.documents_store().presigned_get_url(
        key=export.object_key,
        version_id=export.version_id,
        filename=f"metis-export-{export.finished_at:%Y-%m-%d}-{str(export.pk)[:8]}.zip",
        content_type="application/zip",
        expires_in=settings.EXPORT_LINK_SECONDS,
    )


def _object_versions_left(key: str) -> int:
    listing = object_store.documents_store().client.list_object_versions(
        Bucket=object_store.documents_store().bucket, Prefix=key
    )
    entries = [*listing.get("Versions", []), *listing.get("DeleteMarkers", [])]
    return sum(1 for entry in entries if entry["Key"] == key)


def exports_delete_expired(*, now: dt.datetime) -> int:
    """Delete every version of each due export's file, verified by listing; return how many.

    The row stays, marked expired, with what the export held. A failure leaves the export
    due, so the next run tries again.
    """
    tenant_id = db.require_tenant_context()
    deleted = 0
    for export in Export.objects.for_tenant(tenant_id).due_for_deletion(now):
        db.connection_release()
        object_store.documents_store().purge(export.object_key)
        if _object_versions_left(export.object_key):
            raise StorageUnavailable(f"{export.object_key} still has versions after deletion")
        Export.objects.filter(pk=export.pk).update(
            status=ExportStatus.EXPIRED, deleted_at=timezone.now(), progress_note="file deleted"
        )
        deleted += 1
    return deleted


def exports_fail_stalled(*, now: dt.datetime) -> int:
    """Fail the exports queued or running past STALLED_AFTER; return how many.

    A worker killed mid-build, or a message lost with the broker, leaves the row queued or
    running forever and its page waiting; failed, it says so and the user can ask again.
    """
    tenant_id = db.require_tenant_context()
    return (
        Export.objects.for_tenant(tenant_id)
        .filter(
            status__in=[ExportStatus.QUEUED, ExportStatus.RUNNING],
            created_at__lte=now - STALLED_AFTER,
        )
        .update(
            status=ExportStatus.FAILED,
            error="The build did not finish (its worker stopped); ask for a new export.",
            progress_note="stopped",
            finished_at=now,
        )
    )
