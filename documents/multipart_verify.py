"""How a completed multipart upload is verified before its Document is written (multipart.py).

`verify_in_place` for uploads that declared their part checksums (S3 checked every part's
bytes): type and content by ranged reads, nothing read whole. `verify_read_back` for the rest:
the object read back whole into a temporary file and checked as a page upload is.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, BinaryIO

from documents.validation import (
    SNIFF_BYTES,
    DocumentRejected,
    FileFacts,
    check_content,
    check_content_type,
    inspect_chunks,
)
from metis.objectstore import ranged, store

if TYPE_CHECKING:
    from documents.multipart import MultipartUpload


def verify_in_place(upload: MultipartUpload, *, version_id: str) -> FileFacts:
    """Check the completed object where it lies: its type by its magic bytes, then its content
    (a PDF parses, an image decodes), through ranged reads. Its size and bytes were checked
    part by part against the declared checksums (S3 refuses a part that does not match)."""
    with ranged.open_ranged(
        store.documents_store(),
        upload.key,
        size=upload.size_bytes,
        version_id=version_id,
    ) as stored:
        head = stored.read(SNIFF_BYTES)
        content_type = check_content_type(head=head, document_type=upload.document_type)
        if content_type != upload.content_type:
            raise DocumentRejected(
                f"The file was declared as {upload.content_type} but its content is "
                f"{content_type}.",
                code="content_mismatch",
            )
        check_content(stored, content_type=content_type)
    return FileFacts(size_bytes=upload.size_bytes, sha256=upload.sha256, content_type=content_type)


# The object is read back to disk, never held in memory past this size.
_SPOOL_IN_MEMORY = 2_621_440


def verify_read_back(upload: MultipartUpload) -> FileFacts:
    """Read the stored object back and check it is what was declared, byte for byte, and that
    its content is well formed (the same checks as a page upload, on the same kind of file)."""
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as copy:
        facts = inspect_chunks(
            _tee(store.documents_store().chunks(upload.key), copy),
            document_type=upload.document_type,
        )
        if facts.size_bytes != upload.size_bytes:
            raise DocumentRejected(
                f"The stored file has {facts.size_bytes} bytes, not the {upload.size_bytes} "
                "declared.",
                code="size_mismatch",
            )
        if facts.sha256 != upload.sha256:
            raise DocumentRejected(
                "The stored file's SHA-256 does not match the one declared: it was corrupted or "
                "changed in transit. Nothing was kept; upload it again.",
                code="checksum_mismatch",
            )
        if facts.content_type != upload.content_type:
            raise DocumentRejected(
                f"The file was declared as {upload.content_type} but its content is "
                f"{facts.content_type}.",
                code="content_mismatch",
            )
        check_content(copy, content_type=facts.content_type)
    return facts


def _tee(chunks: Iterator[bytes], copy: BinaryIO) -> Iterator[bytes]:
    for chunk in chunks:
        copy.write(chunk)
        yield chunk
