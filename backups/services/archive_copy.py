"""Weekly archive copy: the latest good full backup, copied for long-term storage (Glacier).

The copy keeps pgBackRest's repository layout (backup.info, archive.info, the backup set and
the WAL it needs to be consistent) under `<repo path>-archive/<label>/`, every object written
with the GLACIER storage class. To restore it: fetch it back from Glacier and point
`repo1-path` at that prefix (docs/operations.md).

With a second region (repo2) the copy is made there, from the second region's own backup and
WAL, server-side in its bucket: the long-term copy then survives the loss of the first region.
"""

from __future__ import annotations

from django.utils import timezone

from backups import config, pgbackrest
from backups.models import BackupKind, BackupRun
from backups.services import runs
from metis.objectstore import store

STORAGE_CLASS = "GLACIER"


def _wal_needed(key: str, start: str, stop: str) -> bool:
    segment = key.rsplit("/", 1)[-1][:24]
    return len(segment) == 24 and start <= segment <= stop


def backup_archive_copy(*, source: BackupRun | None = None) -> BackupRun:
    """Copy `source` (default: the newest good full backup) to long-term storage."""
    ctx = pgbackrest.Context.current()
    repo = ctx.repo.second or ctx.repo
    if repo.type != "s3":
        raise pgbackrest.PgBackRestError("archive copies need an S3 repository")
    source = (
        source or BackupRun.objects.good().filter(kind=BackupKind.FULL, repo=repo.number).first()
    )
    with runs.job_run_exclusive(
        BackupRun, lock="archive-copy", kind=BackupKind.ARCHIVE_COPY
    ) as run:
        if source is None:
            raise RuntimeError(
                f"no good (verified, restore-tested) full backup in repository {repo.number} "
                "to archive"
            )
        bucket = _bucket(repo)
        stanza = ctx.target.stanza
        root = repo.path.strip("/")
        dest_root = f"{root}-archive/{source.label}"
        keys = [
            *bucket.keys(f"{root}/backup/{stanza}/backup.info"),
            *bucket.keys(f"{root}/backup/{stanza}/{source.label}/"),
            *bucket.keys(f"{root}/archive/{stanza}/archive.info"),
            *(
                key
                for key in bucket.keys(f"{root}/archive/{stanza}/")
                if _wal_needed(key, source.wal_start, source.wal_stop)
            ),
        ]
        heartbeat = runs.Heartbeat(run)
        bucket.copy_many(
            [(key, dest_root + key[len(root) :]) for key in keys],
            storage_class=STORAGE_CLASS,
            on_copied=lambda done: heartbeat(100.0 * done / len(keys)),
        )
        runs.job_succeed(
            run,
            label=source.label,
            repo=repo.number,
            location=f"s3://{bucket.bucket}/{dest_root}",
            size_bytes=source.size_bytes,
            stored_bytes=source.stored_bytes,
            checksum=source.checksum,
            wal_start=source.wal_start,
            wal_stop=source.wal_stop,
            details={
                "objects": len(keys),
                "storage_class": STORAGE_CLASS,
                "source_run": source.pk,
                "copied_at": timezone.now().isoformat(),
            },
        )
    return run


def _bucket(repo: config.Repo) -> store.ObjectStore:
    # Repository 1 is the backups bucket the artifacts use; the second region's is its own.
    region2 = store.backups_region2_store() if repo.number == 2 else None
    return region2 or store.backups_store()
