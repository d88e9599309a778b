"""Objects beside the pgBackRest repository: logical dumps, tenant exports, analytics exports.

They go to the backup bucket (BACKUP_REPO_BUCKET, else the object storage bucket) under
BACKUP_REPO_PATH, through boto3, streamed in multipart uploads; with no bucket configured, to
a local directory (the embedded default).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings


def bucket() -> str:
    return settings.BACKUP_REPO_BUCKET or settings.AWS_STORAGE_BUCKET_NAME


def key_for(*parts: str) -> str:
    return "/".join([settings.BACKUP_REPO_PATH.strip("/"), *parts])


def _client():
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=settings.AWS_S3_ENDPOINT_URL or None,
        aws_access_key_id=settings.AWS_ACCESS_KEY_ID or None,
        aws_secret_access_key=settings.AWS_SECRET_ACCESS_KEY or None,
        region_name=settings.AWS_S3_REGION_NAME,
        config=Config(s3={"addressing_style": settings.AWS_S3_ADDRESSING_STYLE}),
    )


def _local_path(key: str) -> Path:
    return Path(settings.BACKUP_REPO_LOCAL_PATH).parent / "objects" / key


def object_put_stream(
    key: str, chunks: Iterable[bytes], *, storage_class: str = ""
) -> tuple[str, int, str]:
    """Store `chunks` at `key`; return (location, size, "sha256:<hex>") of what was stored.

    The chunks are produced here, in the calling thread (they may read the database inside a
    tenant context), into a spool file; boto3's upload threads then read only that spool.
    Callers pass encrypted chunks, so nothing unencrypted is spooled.
    """
    digest = hashlib.sha256()
    size = 0
    with tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024) as spool:
        for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            spool.write(chunk)
        spool.seek(0)
        if bucket():
            extra = {"StorageClass": storage_class} if storage_class else None
            _client().upload_fileobj(spool, bucket(), key, ExtraArgs=extra)
            location = f"s3://{bucket()}/{key}"
        else:
            path = _local_path(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as handle:
                shutil.copyfileobj(spool, handle)
            location = str(path)
    return location, size, "sha256:" + digest.hexdigest()


def object_open(key: str):
    """Return a readable binary stream of the object at `key`."""
    if bucket():
        return _client().get_object(Bucket=bucket(), Key=key)["Body"]
    return _local_path(key).open("rb")


def key_of_location(location: str) -> str:
    if location.startswith("s3://"):
        return location.split("/", 3)[3]
    return str(Path(location).relative_to(Path(settings.BACKUP_REPO_LOCAL_PATH).parent / "objects"))


def object_copy(source_key: str, dest_key: str, *, storage_class: str) -> None:
    if bucket():
        _client().copy_object(
            Bucket=bucket(),
            Key=dest_key,
            CopySource={"Bucket": bucket(), "Key": source_key},
            StorageClass=storage_class,
            MetadataDirective="COPY",
        )
    else:
        dest = _local_path(dest_key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_local_path(source_key), dest)


def object_copy_many(
    pairs: list[tuple[str, str]], *, storage_class: str, on_copied=None, workers: int = 8
) -> None:
    """Copy (source, destination) keys in parallel with one client; call `on_copied(n)`."""
    from concurrent.futures import ThreadPoolExecutor

    if not bucket():
        for done, (source, dest) in enumerate(pairs, start=1):
            object_copy(source, dest, storage_class=storage_class)
            if on_copied:
                on_copied(done)
        return
    client = _client()  # boto3 clients are thread-safe; creating one per object is slow

    def copy(pair: tuple[str, str]) -> None:
        client.copy_object(
            Bucket=bucket(),
            Key=pair[1],
            CopySource={"Bucket": bucket(), "Key": pair[0]},
            StorageClass=storage_class,
            MetadataDirective="COPY",
        )

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for done, _ in enumerate(pool.map(copy, pairs), start=1):
            if on_copied:
                on_copied(done)


def object_keys(prefix: str) -> list[str]:
    if bucket():
        pages = _client().get_paginator("list_objects_v2").paginate(Bucket=bucket(), Prefix=prefix)
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]
    root = _local_path(prefix)
    base = _local_path("")
    return (
        [str(p.relative_to(base)) for p in root.rglob("*") if p.is_file()] if root.exists() else []
    )
