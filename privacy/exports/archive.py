"""Write one export's ZIP to a file on disk: JSON and CSV of the rows, then the document files.

Nothing is held whole in memory: rows arrive a page at a time and are written as they come
(JSON straight into the ZIP, CSV into a side file copied in after), and each document file
streams from S3 into its ZIP entry in 1 MiB chunks. The caller uploads the finished file.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from botocore.exceptions import ClientError
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Sum
from django.utils import timezone

from documents.models import DocumentVersion
from metis.objectstore import store as object_store
from metis.objectstore.errors import STORE_ERRORS, StorageUnavailable, error_code, is_missing
from privacy.exports import event_rows, rows
from tenants import db

CHUNK = 1024 * 1024
# Share of the bar each phase takes: rows are quick, the document files are the bulk.
ROWS_SHARE, FILES_SHARE = 20.0, 78.0

Progress = Callable[[float, str], None]

README = """This archive holds the personal data Metis stores for one subject.

json/*.json   every row, one JSON array per table (users, documents, document_versions,
              access_log, events)
csv/*.csv     the same rows as CSV (nested values as JSON text)
files/<document id>/v<number>-<file name>
              every stored version of every document, byte for byte as uploaded
manifest.json what the archive holds: counts, and each file with its SHA-256 and size;
              files that could not be included (archived to Glacier, missing) and why
"""


@dataclass
class Summary:
    rows: dict[str, int] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "files": len(self.files),
            "file_bytes": sum(f["size_bytes"] for f in self.files),
            "skipped": self.skipped,
        }


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, cls=DjangoJSONEncoder, sort_keys=True)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def _entry(name: str, *, compress: bool = True) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=timezone.now().timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    return info


def _write_table(
    archive: zipfile.ZipFile,
    name: str,
    columns: tuple[str, ...],
    row_pages: Iterable[list[dict[str, Any]]],
    on_rows: Callable[[int], None],
) -> int:
    """Write json/<name>.json and csv/<name>.csv from one pass over the pages; return the count."""
    count = 0
    with tempfile.TemporaryFile(mode="w+", newline="", encoding="utf-8") as side:
        writer = csv.DictWriter(side, fieldnames=columns)
        writer.writeheader()
        with archive.open(_entry(f"json/{name}.json"), "w", force_zip64=True) as raw:
            out = io.TextIOWrapper(raw, encoding="utf-8")
            out.write("[")
            for page in row_pages:
                for row in page:
                    out.write(",\n" if count else "\n")
                    out.write(json.dumps(row, cls=DjangoJSONEncoder, sort_keys=True))
                    writer.writerow({key: _cell(row.get(key)) for key in columns})
                    count += 1
                on_rows(len(page))
            out.write("\n]\n")
            out.flush()
            out.detach()
        side.seek(0)
        # One entry open for writing at a time: the CSV goes in once the JSON is closed.
        with archive.open(_entry(f"csv/{name}.csv"), "w", force_zip64=True) as raw:
            target = io.TextIOWrapper(raw, encoding="utf-8", newline="")
            shutil.copyfileobj(side, target)
            target.flush()
            target.detach()
    return count


def _safe_name(filename: str) -> str:
    """The user's file name as a ZIP member name: no folders, no control characters."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c if c.isprintable() else "_" for c in name).strip(". ") or "file"
    return name[-150:]


def _skip_reason(error: ClientError) -> str | None:
    if error_code(error) == "InvalidObjectState":
        return "archived in Glacier: request a restore of the document, then export again"
    if is_missing(error):
        return "missing from storage"
    return None


def _copy_object(
    archive: zipfile.ZipFile, version: DocumentVersion, path: str, on_bytes: Callable[[int], None]
) -> str:
    """Stream one stored version into the archive; return the SHA-256 of the bytes copied."""
    digest = hashlib.sha256()
    body = object_store.documents_store().open(version.storage_key, version_id=version.version_id)
    info = _entry(path, compress=False)
    info.date_time = version.created_at.timetuple()[:6]
    with body, archive.open(info, "w", force_zip64=version.size_bytes > 2**30) as entry:
        for chunk in body.iter_chunks(CHUNK):
            entry.write(chunk)
            digest.update(chunk)
            on_bytes(len(chunk))
    return digest.hexdigest()


def _version_pages(queryset) -> Iterator[list[DocumentVersion]]:
    for page in rows.pages(queryset):
        db.connection_release()  # no connection held while S3 streams the page's files
        yield page


def _write_files(
    archive: zipfile.ZipFile,
    versions,
    summary: Summary,
    on_bytes: Callable[[int], None],
) -> None:
    for page in _version_pages(versions):
        for version in page:
            name = _safe_name(version.original_filename)
            path = f"files/{version.document_id}/v{version.number}-{name}"
            try:
                sha256 = _copy_object(archive, version, path, on_bytes)
            except ClientError as exc:
                reason = _skip_reason(exc)
                if reason is None:
                    raise StorageUnavailable(
                        f"The object store failed while reading: {exc}"
                    ) from exc
                summary.skipped.append(
                    {
                        "document_id": version.document_id,
                        "version": version.number,
                        "reason": reason,
                    }
                )
                on_bytes(version.size_bytes)
                continue
            except STORE_ERRORS as exc:
                raise StorageUnavailable(f"The object store failed while reading: {exc}") from exc
            summary.files.append(
                {
                    "path": path,
                    "document_id": version.document_id,
                    "version": version.number,
                    "size_bytes": version.size_bytes,
                    "sha256": sha256,
                    "matches_recorded_sha256": sha256 == version.sha256,
                }
            )


class _Bar:
    """Turn counts of rows and bytes into one percentage for the caller's progress callback."""

    def __init__(self, on_progress: Progress, *, row_total: int, byte_total: int) -> None:
        self.on_progress = on_progress
        self.row_total, self.byte_total = max(row_total, 1), max(byte_total, 1)
        self.rows_done = self.bytes_done = 0

    def rows(self, table: str, count: int) -> None:
        self.rows_done += count
        share = ROWS_SHARE * min(self.rows_done / self.row_total, 1)
        self.on_progress(share, f"{table}: {self.rows_done} of {self.row_total} rows")

    def bytes(self, count: int) -> None:
        self.bytes_done += count
        share = ROWS_SHARE + FILES_SHARE * min(self.bytes_done / self.byte_total, 1)
        done_mb, total_mb = self.bytes_done / 2**20, self.byte_total / 2**20
        self.on_progress(share, f"document files: {done_mb:.1f} of {total_mb:.1f} MiB")


def archive_write(
    file: IO[bytes], *, export_id: str, subject: rows.Subject, on_progress: Progress
) -> Summary:
    """Write the subject's archive into `file` (open for binary writing) in the tenant context."""
    tenant_id = db.require_tenant_context()
    subject_rows = rows.subject_rows(subject)
    document_ids = [str(pk) for pk in subject_rows.documents.values_list("pk", flat=True)]
    row_total = sum(table.rows(subject_rows).count() for table in rows.TABLES)
    event_total = event_rows.subject_event_count(tenant_id, subject, document_ids)
    byte_total = subject_rows.versions.aggregate(total=Sum("size_bytes"))["total"] or 0
    bar = _Bar(on_progress, row_total=row_total + event_total, byte_total=byte_total)
    summary = Summary()
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        archive.writestr(_entry("README.txt"), README)
        for table in rows.TABLES:
            summary.rows[table.name] = _write_table(
                archive,
                table.name,
                table.columns,
                ([table.row(r) for r in page] for page in rows.pages(table.rows(subject_rows))),
                lambda n, name=table.name: bar.rows(name, n),
            )
        summary.rows["events"] = _write_table(
            archive,
            "events",
            event_rows.COLUMNS,
            (
                [_event(e) for e in page]
                for page in event_rows.subject_events(tenant_id, subject, document_ids)
            ),
            lambda n: bar.rows("events", n),
        )
        _write_files(archive, subject_rows.versions, summary, bar.bytes)
        manifest = {
            "export_id": export_id,
            "tenant_id": str(tenant_id),
            "subject": {"scope": subject.scope, "user_id": subject.user_id, "ref": subject.ref},
            "created_at": timezone.now(),
            "rows": summary.rows,
            "files": summary.files,
            "skipped": summary.skipped,
        }
        archive.writestr(
            _entry("manifest.json"), json.dumps(manifest, cls=DjangoJSONEncoder, indent=2)
        )
    return summary


def _event(event: dict[str, Any]) -> dict[str, Any]:
    try:
        data = json.loads(event["event_data"])
    except ValueError:
        data = event["event_data"]
    return {**event, "event_data": data}


def archive_to_path(path: Path, **kwargs) -> Summary:
    with path.open("wb") as file:
        return archive_write(file, **kwargs)
