"""Object operations the services need on either backend: S3 (through django-storages and its
boto3 client) or local files (FileSystemStorage, used when no bucket is configured).

Every failure to reach the store surfaces as StorageUnavailable, so callers handle one error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import BinaryIO
from urllib.parse import quote

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core.files import File

from documents import storage

logger = logging.getLogger(__name__)

# boto3's transfer manager wraps errors in S3UploadFailedError (a plain Exception subclass).
try:
    from boto3.exceptions import S3UploadFailedError
except ImportError:  # pragma: no cover
    S3UploadFailedError = RuntimeError

STORE_ERRORS = (BotoCoreError, ClientError, S3UploadFailedError, OSError)


class StorageUnavailable(RuntimeError):
    """The object store refused or could not be reached; nothing was kept."""


def _bucket() -> str:
    return settings.AWS_STORAGE_BUCKET_NAME


def object_put(*, key: str, file: BinaryIO, content_type: str) -> str:
    """Store `file` at `key` (streamed; multipart on S3 past the transfer threshold).

    Return the S3 version id ("" when the bucket is unversioned or the store is local).
    """
    file.seek(0)
    try:
        spooled = getattr(file, "temporary_file_path", None)
        if storage.is_s3() and spooled is not None:
            _s3_upload_from_disk(key=key, path=spooled(), content_type=content_type)
            name = key
        else:
            name = storage.document_storage().save(key, File(file, name=key))
    except STORE_ERRORS as exc:
        object_purge_quietly(key)
        raise StorageUnavailable(f"The document store failed while saving: {exc}") from exc
    if name != key:  # keys are fresh UUIDs: a clash means something else wrote there
        object_purge_quietly(name)
        raise StorageUnavailable(f"The document store renamed {key} to {name}")
    if not storage.is_s3():
        return ""
    try:
        head = storage.s3_client().head_object(Bucket=_bucket(), Key=key)
    except STORE_ERRORS as exc:
        object_purge_quietly(key)
        raise StorageUnavailable(f"The document store failed after saving: {exc}") from exc
    version_id = head.get("VersionId") or ""
    return "" if version_id == "null" else version_id


def _s3_upload_from_disk(*, key: str, path: str, content_type: str) -> None:
    """Upload a file already on disk (a spooled upload) with the storage's own parameters.

    boto3 reads each part from disk as it sends it; `upload_fileobj` (django-storages' save)
    would buffer up to max_concurrency parts of 8 MiB in memory at once.
    """
    s3 = storage.document_storage()
    parameters = {**s3.get_object_parameters(key), "ContentType": content_type}
    s3.bucket.Object(key).upload_file(path, ExtraArgs=parameters, Config=s3.transfer_config)


def object_purge(key: str) -> None:
    """Delete every version (and delete marker) stored under exactly `key`."""
    if not storage.is_s3():
        storage.document_storage().delete(key)
        return
    client = storage.s3_client()
    listing = client.list_object_versions(Bucket=_bucket(), Prefix=key)
    entries = [*listing.get("Versions", []), *listing.get("DeleteMarkers", [])]
    deleted = False
    for entry in entries:
        if entry["Key"] != key:
            continue
        client.delete_object(Bucket=_bucket(), Key=key, VersionId=entry["VersionId"])
        deleted = True
    if not deleted:
        client.delete_object(Bucket=_bucket(), Key=key)


def object_purge_quietly(key: str) -> bool:
    """Purge `key`; on failure log it and return False (the reconcile command finds it later)."""
    try:
        object_purge(key)
    except (*STORE_ERRORS, ValueError):
        logger.warning("could not delete object %s; run reconcile_storage --repair", key)
        return False
    return True


def object_chunks(key: str, *, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
    """Stream the stored object's bytes (S3 GET or the local file), chunk by chunk."""
    try:
        if storage.is_s3():
            body = storage.s3_client().get_object(Bucket=_bucket(), Key=key)["Body"]
            yield from body.iter_chunks(chunk_size)
            return
        with storage.document_storage().open(key, "rb") as file:
            yield from iter(lambda: file.read(chunk_size), b"")
    except STORE_ERRORS as exc:
        raise StorageUnavailable(f"The document store failed while reading: {exc}") from exc


def content_disposition(filename: str) -> str:
    """An attachment header carrying `filename` safely: ASCII fallback plus RFC 5987 filename*."""
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def presigned_get_url(*, key: str, version_id: str, filename: str, content_type: str) -> str:
    params = {
        "Bucket": _bucket(),
        "Key": key,
        "ResponseContentDisposition": content_disposition(filename),
        "ResponseContentType": content_type,
    }
    if version_id:
        params["VersionId"] = version_id
    return storage.s3_client().generate_presigned_url(
        "get_object", Params=params, ExpiresIn=settings.PRESIGNED_URL_EXPIRES
    )
