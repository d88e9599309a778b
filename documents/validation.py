"""What a document's bytes must be: checked by magic bytes, size and content, never by name.

The client's filename extension and Content-Type are ignored: the first bytes of the file decide
its type, and each document type allows only some types (a bank statement is a PDF, an image is
a JPEG or a PNG).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings
from django.core.exceptions import ValidationError
from django.template.defaultfilters import filesizeformat

from documents.models import DocumentType

PDF, JPEG, PNG = "application/pdf", "image/jpeg", "image/png"

# (magic prefix, content type, key extension)
_SIGNATURES = (
    (b"%PDF-", PDF, "pdf"),
    (b"\xff\xd8\xff", JPEG, "jpg"),
    (b"\x89PNG\r\n\x1a\n", PNG, "png"),
)
EXTENSIONS = {content_type: extension for _, content_type, extension in _SIGNATURES}
SNIFF_BYTES = 16
HASH_CHUNK = 1024 * 1024

ALLOWED_TYPES: dict[str, tuple[str, ...]] = {
    DocumentType.PAN: (PDF, JPEG, PNG),
    DocumentType.AADHAR: (PDF, JPEG, PNG),
    DocumentType.BANK_STATEMENT: (PDF,),
    DocumentType.IMAGE: (JPEG, PNG),
    DocumentType.REPORT: (PDF,),
}
_NAMES = {PDF: "PDF", JPEG: "JPEG", PNG: "PNG"}


class DocumentRejected(ValidationError):
    """A file that cannot become a document; `code` says why, the message says it to a person."""


@dataclass(frozen=True)
class FileFacts:
    """What the server itself measured of a file: never what the client claimed."""

    size_bytes: int
    sha256: str
    content_type: str

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.content_type]


def max_upload_bytes() -> int:
    return settings.DOCUMENT_MAX_UPLOAD_BYTES


def sniff_content_type(head: bytes) -> str | None:
    """Return the content type the leading bytes announce, or None if not one we accept."""
    for magic, content_type, _ in _SIGNATURES:
        if head.startswith(magic):
            return content_type
    return None


def check_document_type(document_type: str) -> str:
    if document_type not in DocumentType.values:
        raise DocumentRejected(f"Unknown document type “{document_type}”.", code="bad_type")
    return document_type


def _size(size_bytes: int) -> str:
    return filesizeformat(size_bytes).replace("\xa0", " ")


def check_size(size_bytes: int) -> None:
    if size_bytes == 0:
        raise DocumentRejected("The file is empty.", code="empty")
    limit = max_upload_bytes()
    if size_bytes > limit:
        raise DocumentRejected(
            f"The file is {_size(size_bytes)}; the limit is {_size(limit)}.",
            code="too_large",
        )


def check_allowed(*, content_type: str | None, document_type: str) -> str:
    """Return `content_type` if `document_type` allows it; else reject, naming what is allowed."""
    allowed = ALLOWED_TYPES[DocumentType(document_type)]
    allowed_names = " or ".join(_NAMES[t] for t in allowed)
    label = DocumentType(document_type).label
    if content_type not in _NAMES:
        raise DocumentRejected(
            f"This file is not a PDF, JPEG or PNG (judged by its content, not its name). "
            f"A {label} must be a {allowed_names}.",
            code="unknown_content",
        )
    if content_type not in allowed:
        raise DocumentRejected(
            f"A {label} must be a {allowed_names}; this file is a {_NAMES[content_type]}.",
            code="content_not_allowed",
        )
    return content_type


def check_content_type(*, head: bytes, document_type: str) -> str:
    """Return the type the leading bytes announce if `document_type` allows it."""
    return check_allowed(content_type=sniff_content_type(head), document_type=document_type)


def inspect_chunks(chunks: Iterable[bytes], *, document_type: str) -> FileFacts:
    """Hash and measure a stream chunk by chunk (never whole in memory); sniff its head."""
    digest = hashlib.sha256()
    size = 0
    head = b""
    limit = max_upload_bytes()
    for chunk in chunks:
        if len(head) < SNIFF_BYTES:
            head += chunk[: SNIFF_BYTES - len(head)]
        digest.update(chunk)
        size += len(chunk)
        if size > limit:
            check_size(size)  # stop reading as soon as the limit is passed
    check_size(size)
    content_type = check_content_type(head=head, document_type=document_type)
    return FileFacts(size_bytes=size, sha256=digest.hexdigest(), content_type=content_type)


def inspect_file(file: BinaryIO, *, document_type: str) -> FileFacts:
    """Inspect a seekable file from its start and rewind it for the upload that follows."""
    file.seek(0)
    facts = inspect_chunks(iter(lambda: file.read(HASH_CHUNK), b""), document_type=document_type)
    file.seek(0)
    return facts


_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]")


def clean_filename(name: str) -> str:
    """Return the user's filename fit for display and Content-Disposition (never for a key)."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]  # no directories, from any client OS
    name = _UNSAFE.sub("_", name).strip().strip(".") or "document"
    if len(name) > 255:
        stem, dot, extension = name.rpartition(".")
        name = (stem[: 250 - len(extension)] + dot + extension) if dot else name[:255]
    return name
