"""`ObjectStore`: one bucket on one endpoint, with every object operation the apps need.

Writes carry the encryption arguments (encryption.py) and come back with the S3 version id;
reads stream; deletes remove every version (a plain DELETE on a versioned bucket only adds a
marker). Errors are boto3's own (errors.STORE_ERRORS); `put_*` turn them into
StorageUnavailable after removing whatever half-arrived.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import quote, urlsplit

from botocore.exceptions import ClientError
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from metis.objectstore import clients, encryption
from metis.objectstore.errors import STORE_ERRORS, StorageUnavailable, error_code, is_missing

logger = logging.getLogger(__name__)

STANDARD = "STANDARD"
# Tiering only moves forward along this order unless asked to go back.
_CLASS_RANK = {STANDARD: 0, "STANDARD_IA": 1, "GLACIER": 2}
# Object headers an in-place copy with MetadataDirective=REPLACE must re-send to keep them.
_KEPT_HEADERS = ("ContentType", "ContentDisposition", "ContentEncoding", "ContentLanguage")


def _version(response: dict) -> str:
    version_id = response.get("VersionId") or ""
    return "" if version_id == "null" else version_id


def _quoted(etag: str) -> str:
    """An ETag in the quoted form HEAD and PUT answer with (a copy's result may lack quotes)."""
    return f'"{etag.strip(chr(34))}"' if etag else ""


@dataclass(frozen=True)
class Stored:
    """What a write left in the bucket: the object's version id and its ETag (quoted)."""

    version_id: str
    etag: str


@dataclass(frozen=True)
class ClassChange:
    """The result of a storage-class move: the object's version and ETag, the class it is in,
    and whether a copy was made."""

    version_id: str
    etag: str
    storage_class: str
    copied: bool


class ObjectChanged(Exception):
    """The object at a key is not the one the caller knows (another ETag or version, or gone)."""


def content_disposition(filename: str) -> str:
    """An attachment header carrying `filename` safely: ASCII fallback plus RFC 5987 filename*."""
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


@dataclass(frozen=True)
class ObjectStore:
    bucket: str
    endpoint: clients.Endpoint
    encryption: tuple[tuple[str, str], ...] = ()  # hashable form of the SSE arguments

    @property
    def client(self) -> Any:
        return clients.client_for(self.endpoint)

    @property
    def sse(self) -> dict[str, str]:
        return dict(self.encryption)

    def url_of(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    # --- Writes ------------------------------------------------------------------------------

    def _put(self, key: str, send: Callable[[dict], dict | None], extra: dict) -> str:
        return self._put_stored(key, send, extra).version_id

    def _put_stored(self, key: str, send: Callable[[dict], dict | None], extra: dict) -> Stored:
        try:
            response = send({**self.sse, **extra})
            # A single PUT answers with its version; boto3's transfers answer nothing: ask.
            if response is None:
                response = self.client.head_object(Bucket=self.bucket, Key=key)
            return Stored(version_id=_version(response), etag=_quoted(response.get("ETag", "")))
        except STORE_ERRORS as exc:
            self.purge_quietly(key)
            raise StorageUnavailable(f"The object store failed while saving {key}: {exc}") from exc

    def put_file(self, *, key: str, path: str, content_type: str, storage_class: str = "") -> str:
        """Store the file at `path` (read part by part from disk); return the version id."""
        return self.put_file_stored(
            key=key, path=path, content_type=content_type, storage_class=storage_class
        ).version_id

    def put_file_stored(
        self, *, key: str, path: str, content_type: str, storage_class: str = ""
    ) -> Stored:
        """Store the file at `path`; return its version id and ETag."""
        extra = {"ContentType": content_type, **_class_argument(storage_class)}
        return self._put_stored(
            key,
            lambda args: self.client.upload_file(path, self.bucket, key, ExtraArgs=args),
            extra,
        )

    def put_fileobj(
        self, *, key: str, file: IO[bytes], content_type: str, storage_class: str = ""
    ) -> str:
        """Store a readable binary stream (multipart past boto3's threshold); return the version."""
        return self.put_fileobj_stored(
            key=key, file=file, content_type=content_type, storage_class=storage_class
        ).version_id

    def put_fileobj_stored(
        self, *, key: str, file: IO[bytes], content_type: str, storage_class: str = ""
    ) -> Stored:
        """Store a readable binary stream; return its version id and ETag.

        A file Django spooled to disk (TemporaryUploadedFile) is sent from its path: boto3 then
        reads each part from disk as it sends it, where a stream would have up to ten 8 MiB
        parts in memory at once.
        """
        spooled = getattr(file, "temporary_file_path", None)
        if spooled is not None:
            return self.put_file_stored(
                key=key, path=spooled(), content_type=content_type, storage_class=storage_class
            )
        file.seek(0)
        extra = {"ContentType": content_type, **_class_argument(storage_class)}
        return self._put_stored(
            key,
            lambda args: self.client.upload_fileobj(file, self.bucket, key, ExtraArgs=args),
            extra,
        )

    def put_bytes(self, *, key: str, data: bytes, content_type: str) -> str:
        """Store `data` whole (one PUT appears all at once: never seen half-written)."""
        return self._put(
            key,
            lambda args: self.client.put_object(Bucket=self.bucket, Key=key, Body=data, **args),
            {"ContentType": content_type},
        )

    def put_locked(self, *, key: str, data: bytes, content_type: str, retain_until) -> str:
        """Store `data` under S3 Object Lock (COMPLIANCE) until `retain_until`: no credential
        can delete or shorten that version before then, ours included. Needs a bucket made
        with Object Lock (`object_lock_enabled()`)."""
        return self._put(
            key,
            lambda args: self.client.put_object(Bucket=self.bucket, Key=key, Body=data, **args),
            {
                "ContentType": content_type,
                "ObjectLockMode": "COMPLIANCE",
                "ObjectLockRetainUntilDate": retain_until,
            },
        )

    def object_lock_enabled(self) -> bool:
        """True when the bucket was made with S3 Object Lock (servers without it answer no)."""
        try:
            answer = self.client.get_object_lock_configuration(Bucket=self.bucket)
        except ClientError:
            return False
        return answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"

    def versioning_enabled(self) -> bool:
        answer = self.client.get_bucket_versioning(Bucket=self.bucket)
        return answer.get("Status") == "Enabled"

    # --- Reads -------------------------------------------------------------------------------

    def read_version(self, key: str, version_id: str) -> bytes:
        """Return one stored version of the object, whole."""
        body = self.client.get_object(Bucket=self.bucket, Key=key, VersionId=version_id)["Body"]
        with body:
            return body.read()

    def head(self, key: str, *, version_id: str = "") -> dict | None:
        """Return the object's headers, or None when there is no such object."""
        arguments = {"Bucket": self.bucket, "Key": key}
        if version_id:
            arguments["VersionId"] = version_id
        try:
            return self.client.head_object(**arguments)
        except ClientError as exc:
            if is_missing(exc):
                return None
            raise

    def exists(self, key: str) -> bool:
        return self.head(key) is not None

    def open(self, key: str, *, byte_range: str = "", version_id: str = "") -> Any:
        """Return the object's streaming body (read it, iterate it, close it)."""
        arguments = {"Bucket": self.bucket, "Key": key}
        if byte_range:
            arguments["Range"] = byte_range
        if version_id:
            arguments["VersionId"] = version_id
        return self.client.get_object(**arguments)["Body"]

    def read_bytes(self, key: str) -> bytes | None:
        """Return the whole object, or None when there is no such object."""
        try:
            body = self.open(key)
        except ClientError as exc:
            if is_missing(exc):
                return None
            raise
        with body:
            return body.read()

    def chunks(self, key: str, *, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """Stream the object's bytes; any failure is StorageUnavailable."""
        try:
            body = self.open(key)
            yield from body.iter_chunks(chunk_size)
        except STORE_ERRORS as exc:
            raise StorageUnavailable(f"The object store failed while reading: {exc}") from exc

    def get_file(self, *, key: str, path: str) -> None:
        """Copy the object into the file at `path` (large ones in parallel ranged parts).

        Any failure is StorageUnavailable.
        """
        try:
            self.client.download_file(self.bucket, key, path)
        except STORE_ERRORS as exc:
            raise StorageUnavailable(f"The object store failed while reading {key}: {exc}") from exc

    def keys(self, prefix: str) -> list[str]:
        """Every current object's key under `prefix`."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]

    def versions(self, prefix: str) -> Iterator[dict]:
        """Every stored version under `prefix` (delete markers aside), page by page."""
        pages = self.client.get_paginator("list_object_versions").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        for page in pages:
            yield from page.get("Versions", [])

    # --- Deletes -----------------------------------------------------------------------------

    def purge(self, key: str) -> None:
        """Delete every version and delete marker stored under exactly `key`."""
        listing = self.client.list_object_versions(Bucket=self.bucket, Prefix=key)
        entries = [*listing.get("Versions", []), *listing.get("DeleteMarkers", [])]
        deleted = False
        for entry in entries:
            if entry["Key"] != key:
                continue
            self.client.delete_object(Bucket=self.bucket, Key=key, VersionId=entry["VersionId"])
            deleted = True
        if not deleted:
            self.client.delete_object(Bucket=self.bucket, Key=key)

    def version_entries(self, prefix: str) -> Iterator[dict]:
        """Every version and every delete marker under `prefix` (each with "IsDeleteMarker")."""
        pages = self.client.get_paginator("list_object_versions").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        for page in pages:
            for entry in page.get("Versions", []):
                yield {**entry, "IsDeleteMarker": False}
            for entry in page.get("DeleteMarkers", []):
                yield {**entry, "IsDeleteMarker": True}

    def version_entries_many(self, prefixes: list[str], *, workers: int = 8) -> list[dict]:
        """Every version and delete marker under each of `prefixes`, listed in parallel."""
        with ThreadPoolExecutor(max_workers=workers) as pool:
            listed = pool.map(lambda prefix: list(self.version_entries(prefix)), prefixes)
            return [entry for entries in listed for entry in entries]

    def purge_prefixes(self, prefixes: list[str], *, workers: int = 8) -> tuple[int, int]:
        """Delete every version and delete marker under each folder in `prefixes`.

        Return (versions, delete markers) deleted. A plain DELETE on a versioned bucket only
        adds a marker; naming each version id removes the bytes. The folders are listed in
        parallel and their entries deleted together, a thousand per request: one request per
        folder would cost a round trip for each document's one or two versions.
        """
        for prefix in prefixes:
            if not prefix.endswith("/"):
                raise ValueError(f"purge_prefixes takes folders ending in '/', not {prefix!r}")
        entries = self.version_entries_many(prefixes, workers=workers)
        for start in range(0, len(entries), 1000):
            batch = entries[start : start + 1000]
            response = self.client.delete_objects(
                Bucket=self.bucket,
                Delete={
                    "Objects": [{"Key": e["Key"], "VersionId": e["VersionId"]} for e in batch],
                    "Quiet": True,
                },
            )
            if response.get("Errors"):
                first = response["Errors"][0]
                raise StorageUnavailable(
                    f"The object store refused to delete {first.get('Key')}: {first.get('Message')}"
                )
        markers = sum(1 for e in entries if e["IsDeleteMarker"])
        return len(entries) - markers, markers

    def purge_quietly(self, key: str) -> bool:
        """Purge `key`; on failure log it and return False (reconcile_storage finds it later)."""
        try:
            self.purge(key)
        except (*STORE_ERRORS, ValueError):
            logger.warning("could not delete object %s; run reconcile_storage --repair", key)
            return False
        return True

    # --- Storage classes and copies ----------------------------------------------------------

    def copy(self, source_key: str, dest_key: str, *, storage_class: str) -> None:
        """Copy an object to another key (metadata kept) in `storage_class`."""
        self.client.copy_object(
            Bucket=self.bucket,
            Key=dest_key,
            CopySource={"Bucket": self.bucket, "Key": source_key},
            StorageClass=storage_class,
            MetadataDirective="COPY",
            **self.sse,
        )

    def copy_many(
        self,
        pairs: list[tuple[str, str]],
        *,
        storage_class: str,
        on_copied: Callable[[int], None] | None = None,
        workers: int = 8,
    ) -> None:
        """Copy (source, destination) pairs in parallel through the one client."""
        with ThreadPoolExecutor(max_workers=workers) as pool:
            copies = pool.map(lambda pair: self.copy(*pair, storage_class=storage_class), pairs)
            for done, _ in enumerate(copies, start=1):
                if on_copied:
                    on_copied(done)

    def move_class(self, *, key: str, storage_class: str, etag: str) -> ClassChange:
        """Copy the object at `key` onto itself in `storage_class`, if it still has `etag`.

        One request, no HEAD: the copy keeps the object's content headers and metadata
        (MetadataDirective=COPY, on the server) and re-sends the encryption of the settings.
        Raises ClientError when the object is not the one the caller knows: PreconditionFailed
        (another ETag: rewritten), NoSuchKey (deleted), InvalidObjectState (archived by a
        lifecycle rule); `set_class` then finds out what happened.
        """
        response = self.client.copy_object(
            Bucket=self.bucket,
            Key=key,
            CopySource={"Bucket": self.bucket, "Key": key},
            CopySourceIfMatch=etag,
            StorageClass=storage_class,
            MetadataDirective="COPY",
            **self.sse,
        )
        result = response.get("CopyObjectResult", {})
        return ClassChange(
            version_id=_version(response),
            etag=_quoted(result.get("ETag", "")) or etag,
            storage_class=storage_class,
            copied=True,
        )

    def set_class(
        self,
        *,
        key: str,
        storage_class: str,
        backwards: bool = False,
        expect_etag: str = "",
        expect_version: str = "",
    ) -> ClassChange:
        """Put the object at `key` in `storage_class` by an in-place copy, unless it is already.

        Reads the object first (HEAD). Without `backwards`, an object already in a colder class
        (a lifecycle rule got there first) is left there. With `expect_etag` (else
        `expect_version`), raise ObjectChanged unless the object holds the same bytes as the
        version the caller knows: a copy an earlier run made has the same ETag, a rewrite or
        a delete has not. The copy re-sends metadata, content headers and the object's own
        encryption (it may predate a settings change), so all survive the move.
        """
        head = self.head(key)
        if head is None:
            raise ObjectChanged(f"{key}: no current object")
        version_id, etag = _version(head), _quoted(head.get("ETag", ""))
        if not expect_etag and expect_version and expect_version != version_id:
            known = self.head(key, version_id=expect_version)
            expect_etag = _quoted(known.get("ETag", "")) if known else "(gone)"
        if expect_etag and etag != expect_etag:
            raise ObjectChanged(f"{key}: ETag {etag}, expected {expect_etag}")
        actual = head.get("StorageClass") or STANDARD
        rank = _CLASS_RANK.get(actual, 0)
        if actual == storage_class or (not backwards and rank > _CLASS_RANK[storage_class]):
            return ClassChange(version_id, etag, actual, copied=False)
        source = {"Bucket": self.bucket, "Key": key}
        if version_id:
            source["VersionId"] = version_id  # copy exactly the version we looked at
        sse = (
            {"ServerSideEncryption": head["ServerSideEncryption"]}
            if head.get("ServerSideEncryption")
            else self.sse
        )
        if head.get("SSEKMSKeyId"):
            sse["SSEKMSKeyId"] = head["SSEKMSKeyId"]
        response = self.client.copy_object(
            Bucket=self.bucket,
            Key=key,
            CopySource=source,
            StorageClass=storage_class,
            MetadataDirective="REPLACE",
            Metadata=head.get("Metadata", {}),
            **{name: head[name] for name in _KEPT_HEADERS if head.get(name)},
            **sse,
        )
        result = response.get("CopyObjectResult", {})
        return ClassChange(
            _version(response), _quoted(result.get("ETag", "")) or etag, storage_class, True
        )

    def restore_request(self, key: str, *, days: int, tier: str) -> None:
        """Ask for a temporary readable copy of an archived (Glacier) object."""
        self.client.restore_object(
            Bucket=self.bucket,
            Key=key,
            RestoreRequest={"Days": days, "GlacierJobParameters": {"Tier": tier}},
        )

    def readable(self, key: str) -> bool:
        """Prove the object readable with a one-byte ranged GET; False if it is archived."""
        try:
            with self.open(key, byte_range="bytes=0-0") as body:
                body.read()
        except ClientError as exc:
            if error_code(exc) == "InvalidObjectState":
                return False
            raise
        return True

    # --- Presigned URLs ----------------------------------------------------------------------

    def presigned_get_url(
        self,
        *,
        key: str,
        version_id: str = "",
        filename: str = "",
        content_type: str = "",
        expires_in: int | None = None,
    ) -> str:
        """A GET URL valid for `expires_in` (else PRESIGNED_URL_EXPIRES) seconds, pinned to
        `version_id`."""
        params: dict[str, str] = {"Bucket": self.bucket, "Key": key}
        if filename:
            params["ResponseContentDisposition"] = content_disposition(filename)
        if content_type:
            params["ResponseContentType"] = content_type
        if version_id:
            params["VersionId"] = version_id
        return self.client.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=expires_in or settings.PRESIGNED_URL_EXPIRES
        )

    def presigned_origin(self) -> str:
        """The origin (scheme://host[:port]) of the URLs this store presigns.

        boto3 picks the host from the endpoint, region, addressing style and bucket (a bucket
        subdomain or not, a global or regional AWS host); a page that sends browsers there (a
        Content Security Policy source) asks here rather than repeating those rules.
        """
        url = self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": "origin"}, ExpiresIn=1
        )
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}"

    # --- Multipart uploads -------------------------------------------------------------------

    def multipart_start(self, *, key: str, content_type: str, checksums: bool = False) -> str:
        """Open a multipart upload at `key`; return its upload id. With `checksums`, every part
        must come with its SHA-256 (`x-amz-checksum-sha256`), which S3 checks on arrival."""
        extra = {"ChecksumAlgorithm": "SHA256"} if checksums else {}
        opened = self.client.create_multipart_upload(
            Bucket=self.bucket, Key=key, ContentType=content_type, **self.sse, **extra
        )
        return opened["UploadId"]

    def multipart_part_url(
        self, *, key: str, upload_id: str, part_number: int, checksum_sha256: str = ""
    ) -> str:
        """A PUT URL for one part. With `checksum_sha256` (base64) the header is signed in: the
        client must send exactly that digest, and S3 refuses a body that does not match it."""
        params: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "UploadId": upload_id,
            "PartNumber": part_number,
        }
        if checksum_sha256:
            params["ChecksumSHA256"] = checksum_sha256
        return self.client.generate_presigned_url(
            "upload_part", Params=params, ExpiresIn=settings.PRESIGNED_URL_EXPIRES
        )

    def multipart_parts(self, *, key: str, upload_id: str) -> list[dict]:
        """Every part S3 holds for the upload (PartNumber, Size, ETag), over all listing pages."""
        pages = self.client.get_paginator("list_parts").paginate(
            Bucket=self.bucket, Key=key, UploadId=upload_id
        )
        return [part for page in pages for part in page.get("Parts", [])]

    def multipart_complete(self, *, key: str, upload_id: str, parts: Iterable[dict]) -> dict:
        """Complete the upload; return S3's answer (its VersionId among it)."""
        return self.client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": list(parts)},
        )

    def multipart_abort(self, *, key: str, upload_id: str) -> None:
        self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    def multipart_uploads(self, prefix: str) -> Iterator[dict]:
        """Every multipart upload in progress under `prefix` (Key, UploadId, Initiated)."""
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        for page in pages:
            yield from page.get("Uploads", [])


def _class_argument(storage_class: str) -> dict[str, str]:
    return {"StorageClass": storage_class} if storage_class else {}


def _endpoint() -> clients.Endpoint:
    return clients.Endpoint(
        url=settings.AWS_S3_ENDPOINT_URL,
        region=settings.AWS_S3_REGION_NAME,
        access_key=settings.AWS_ACCESS_KEY_ID,
        secret_key=settings.AWS_SECRET_ACCESS_KEY,
        addressing_style=settings.AWS_S3_ADDRESSING_STYLE,
        connect_timeout=settings.AWS_S3_CONNECT_TIMEOUT,
        read_timeout=settings.AWS_S3_READ_TIMEOUT,
        max_attempts=settings.AWS_S3_MAX_ATTEMPTS,
        retry_mode=settings.AWS_S3_RETRY_MODE,
    )


def _named(bucket: str, setting: str) -> str:
    if not bucket:
        raise ImproperlyConfigured(
            f"{setting} is not set: `make run` starts an embedded S3 server and sets it; "
            "elsewhere point it at a bucket (see .env.example)"
        )
    return bucket


def documents_store() -> ObjectStore:
    """The bucket documents, exports and reports live in (AWS_STORAGE_BUCKET_NAME)."""
    return ObjectStore(
        bucket=_named(settings.AWS_STORAGE_BUCKET_NAME, "AWS_STORAGE_BUCKET_NAME"),
        endpoint=_endpoint(),
        encryption=tuple(encryption.sse_parameters().items()),
    )


def backups_store() -> ObjectStore:
    """The bucket backup artifacts go to: BACKUP_REPO_BUCKET, else the documents bucket."""
    return ObjectStore(
        bucket=_named(
            settings.BACKUP_REPO_BUCKET or settings.AWS_STORAGE_BUCKET_NAME, "BACKUP_REPO_BUCKET"
        ),
        endpoint=_endpoint(),
        encryption=tuple(encryption.sse_parameters().items()),
    )


def backups_region2_store() -> ObjectStore | None:
    """The second region's backups bucket (BACKUP_REPO2_S3_BUCKET on its own endpoint, region
    and keys), or None when there is no second region. No SSE arguments: a KMS key of the first
    region means nothing there; what goes there is encrypted before it leaves (pgBackRest's
    cipher) or holds no personal data (the erasure ledger's ids)."""
    if not (settings.BACKUP_REPO2_S3_BUCKET and settings.BACKUP_REPO2_S3_ENDPOINT_URL):
        return None
    primary = _endpoint()
    return ObjectStore(
        bucket=settings.BACKUP_REPO2_S3_BUCKET,
        endpoint=dataclasses.replace(
            primary,
            url=settings.BACKUP_REPO2_S3_ENDPOINT_URL,
            region=settings.BACKUP_REPO2_S3_REGION,
            access_key=settings.BACKUP_REPO2_S3_KEY,
            secret_key=settings.BACKUP_REPO2_S3_SECRET,
            verify_tls=settings.BACKUP_REPO2_S3_VERIFY_TLS,
        ),
    )


def audit_store() -> ObjectStore:
    """The bucket the audit trail's anchors and exports go to: AUDIT_ANCHOR_BUCKET, else the
    documents bucket."""
    return ObjectStore(
        bucket=_named(
            settings.AUDIT_ANCHOR_BUCKET or settings.AWS_STORAGE_BUCKET_NAME,
            "AUDIT_ANCHOR_BUCKET",
        ),
        endpoint=_endpoint(),
        encryption=tuple(encryption.sse_parameters().items()),
    )


def documents_dr_store() -> ObjectStore | None:
    """The disaster-recovery copy of the documents bucket (DOCUMENTS_DR_BUCKET), or None when
    there is none. Endpoint, region and keys default to the primary's."""
    if not settings.DOCUMENTS_DR_BUCKET:
        return None
    primary = _endpoint()
    endpoint = clients.Endpoint(
        url=settings.DOCUMENTS_DR_S3_ENDPOINT_URL or primary.url,
        region=settings.DOCUMENTS_DR_S3_REGION_NAME or primary.region,
        access_key=settings.DOCUMENTS_DR_ACCESS_KEY_ID or primary.access_key,
        secret_key=settings.DOCUMENTS_DR_SECRET_ACCESS_KEY or primary.secret_key,
        addressing_style=primary.addressing_style,
        connect_timeout=primary.connect_timeout,
        read_timeout=primary.read_timeout,
        max_attempts=primary.max_attempts,
        retry_mode=primary.retry_mode,
    )
    parameters = encryption.sse_parameters()
    if parameters.get("SSEKMSKeyId") and settings.DOCUMENTS_DR_SSE_KMS_KEY_ID:
        parameters["SSEKMSKeyId"] = settings.DOCUMENTS_DR_SSE_KMS_KEY_ID
    return ObjectStore(
        bucket=settings.DOCUMENTS_DR_BUCKET,
        endpoint=endpoint,
        encryption=tuple(parameters.items()),
    )


def documents_probe_store() -> ObjectStore:
    """The documents bucket through a client that gives up fast: one attempt, short timeouts.
    For asking "is the primary up?" where a caller waits for the answer."""
    primary = documents_store()
    timeout = settings.DOCUMENTS_PRIMARY_PROBE_TIMEOUT
    return dataclasses.replace(
        primary,
        endpoint=dataclasses.replace(
            primary.endpoint, connect_timeout=timeout, read_timeout=timeout, max_attempts=1
        ),
    )
