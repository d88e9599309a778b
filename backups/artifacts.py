"""Backup artifacts beside the pgBackRest repository: logical dumps, tenant and analytics exports.

They go to the backups store (BACKUP_REPO_BUCKET, else the documents bucket) under
BACKUP_REPO_PATH, through the object-storage room, streamed in multipart uploads.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterable
from typing import Any

from django.conf import settings

from metis.objectstore import store


def bucket() -> str:
    return store.backups_store().bucket


def key_for(*parts: str) -> str:
    return "/".join([settings.BACKUP_REPO_PATH.strip("/"), *parts])


def object_put_stream(
    key: str, chunks: Iterable[bytes], *, storage_class: str = ""
) -> tuple[str, int, str]:
    """Store `chunks` at `key`; return (location, size, "sha256:<hex>") of what was stored.

    The chunks are produced here, in the calling thread (they may read the database inside a
    tenant context), into a spool file; boto3's upload threads then read only that spool.
    Callers pass encrypted chunks, so nothing unencrypted is spooled.
    """
    backups = store.backups_store()
    digest = hashlib.sha256()
    size = 0
    with tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024) as spool:
        for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            spool.write(chunk)
        spool.seek(0)
        backups.put_fileobj(
            key=key,
            file=spool,  # type: ignore[arg-type]
            content_type="application/octet-stream",
            storage_class=storage_class,
        )
    return backups.url_of(key), size, "sha256:" + digest.hexdigest()


def object_open(key: str) -> Any:
    """Return a readable binary stream of the object at `key`."""
    return store.backups_store().open(key)


def key_of_location(location: str) -> str:
    return location.split("/", 3)[3]
