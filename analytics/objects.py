"""Whole-object writes to the configured object storage that are never seen half-written.

Exports and reports replace objects at fixed keys (`latest.json`, one report per tenant and
week), which Django's storage API does not do (it renames instead of overwriting). An S3 PUT or
completed multipart upload appears all at once; on local files we write a temporary file in the
same folder and rename it over the target, which POSIX makes atomic.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile

from documents import storage


def _local_path(key: str) -> pathlib.Path:
    return pathlib.Path(storage.document_storage().path(key))


def _s3_extra_args(content_type: str) -> dict:
    return {**storage.sse_parameters(), "ContentType": content_type}


def object_put_file(*, key: str, path: pathlib.Path | str, content_type: str) -> None:
    """Store the local file `path` as object `key`, replacing any object there, atomically."""
    if storage.is_s3():
        bucket = storage.document_storage().bucket_name
        storage.s3_client().upload_file(
            str(path), bucket, key, ExtraArgs=_s3_extra_args(content_type)
        )
        return
    target = _local_path(key)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out, open(path, "rb") as source:
            shutil.copyfileobj(source, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        pathlib.Path(temporary).unlink(missing_ok=True)
        raise


def object_put_bytes(*, key: str, data: bytes, content_type: str) -> None:
    """Store `data` as object `key`, replacing any object there, atomically."""
    if storage.is_s3():
        storage.s3_client().put_object(
            Bucket=storage.document_storage().bucket_name,
            Key=key,
            Body=data,
            **_s3_extra_args(content_type),
        )
        return
    with tempfile.NamedTemporaryFile(delete=False) as handle:
        handle.write(data)
    try:
        object_put_file(key=key, path=handle.name, content_type=content_type)
    finally:
        os.unlink(handle.name)


def object_read_bytes(key: str) -> bytes | None:
    """Return the bytes of object `key`, or None when there is no such object."""
    store = storage.document_storage()
    if not store.exists(key):
        return None
    with store.open(key, "rb") as handle:
        return handle.read()
