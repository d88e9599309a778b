"""Copy one object version from one store to another (a bucket in a second region), verified.

A server-side copy cannot cross endpoints, so the bytes pass through here: read the exact
version, hash it as it streams (spooled to disk past a few MiB, never whole in memory), refuse
it unless it is the content the caller recorded, then PUT it under the same key with the same
encryption, content headers and metadata. The PUT carries the SHA-256, which the target checks
on arrival; the answer's ETag is checked against the MD5 of what was sent (where S3 makes the
ETag an MD5: SSE-S3, not SSE-KMS).
"""

from __future__ import annotations

import base64
import hashlib
import tempfile
from dataclasses import dataclass

from metis.objectstore.store import _KEPT_HEADERS, ObjectStore, _quoted, _version

_CHUNK = 1024 * 1024
_IN_MEMORY = 8 * 1024 * 1024  # larger versions are spooled to a temporary file


class ReplicaMismatch(Exception):
    """The bytes read or written are not the ones expected: nothing is recorded as copied."""


@dataclass(frozen=True)
class Replica:
    """A verified copy: its version id in the target, its ETag, and the content's SHA-256."""

    version_id: str
    etag: str
    sha256: str


def _encryption(head: dict, *, target: ObjectStore) -> dict[str, str]:
    """The source object's own encryption (it may predate a settings change); a KMS key is the
    target's own (a key lives in one region), else the source's."""
    algorithm = head.get("ServerSideEncryption")
    if not algorithm:
        return target.sse
    parameters = {"ServerSideEncryption": algorithm}
    if algorithm == "aws:kms":
        key = target.sse.get("SSEKMSKeyId") or head.get("SSEKMSKeyId")
        if key:
            parameters["SSEKMSKeyId"] = key
    return parameters


def version_copy(
    *, source: ObjectStore, target: ObjectStore, key: str, version_id: str, sha256: str
) -> Replica:
    """Copy `key` at `version_id` from `source` to `target`; return the verified copy.

    Raise ReplicaMismatch when the source's bytes do not hash to `sha256` or the target's
    answer does not match what was sent; boto3's errors pass through (the caller retries).
    """
    arguments = {"Bucket": source.bucket, "Key": key}
    if version_id:
        arguments["VersionId"] = version_id
    got = source.client.get_object(**arguments)
    digest, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with tempfile.SpooledTemporaryFile(max_size=_IN_MEMORY) as spool:
        body = got["Body"]
        try:
            for chunk in body.iter_chunks(_CHUNK):
                digest.update(chunk)
                md5.update(chunk)
                spool.write(chunk)
        finally:
            body.close()
        if digest.hexdigest() != sha256:
            raise ReplicaMismatch(
                f"{key} ({version_id or 'current'}) hashes to {digest.hexdigest()}, "
                f"not the recorded {sha256}: not copied"
            )
        size = spool.tell()
        spool.seek(0)
        encryption = _encryption(got, target=target)
        put = target.client.put_object(
            Bucket=target.bucket,
            Key=key,
            Body=spool,
            ContentLength=size,
            ChecksumSHA256=base64.b64encode(digest.digest()).decode(),
            Metadata=got.get("Metadata", {}),
            **{name: got[name] for name in _KEPT_HEADERS if got.get(name)},
            **({"StorageClass": got["StorageClass"]} if got.get("StorageClass") else {}),
            **encryption,
        )
    etag = _quoted(put.get("ETag", ""))
    if encryption.get("ServerSideEncryption") != "aws:kms" and etag != _quoted(md5.hexdigest()):
        raise ReplicaMismatch(f"{key}: the copy's ETag is {etag}, not the MD5 of what was sent")
    return Replica(version_id=_version(put), etag=etag, sha256=sha256)
