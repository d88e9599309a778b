"""What a document's bytes must be: checked by magic bytes, size and content, never by name.

The client's filename extension and Content-Type are ignored: the first bytes of the file decide
its type, and each document type allows only some types (a bank statement is a PDF, an image is
a JPEG or a PNG). Then the content must be what the magic bytes promise: a PDF must parse
(pypdf: header, cross-reference table, trailer, page tree) and an image must decode (Pillow).
Both read the file where it already is (the spooled temporary file), never a copy in memory.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings
from django.core.exceptions import ValidationError
from django.template.defaultfilters import filesizeformat
from PIL import Image
from pypdf import PdfReader

from documents.models import Document, DocumentType

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
        known = ", ".join(DocumentType.values)
        raise DocumentRejected(
            f"Unknown document type “{document_type[:40]}”; use one of {known}.", code="bad_type"
        )
    return document_type


def _size(size_bytes: int) -> str:
    return filesizeformat(size_bytes).replace("\xa0", " ")


def check_size(size_bytes: int) -> None:
    if size_bytes == 0:
        raise DocumentRejected("The file is empty.", code="empty")
    if size_bytes < 0:
        raise DocumentRejected(
            f"The size {size_bytes} is negative; give the file's size in bytes.",
            code="bad_size",
        )
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
    try:
        check_content(file, content_type=facts.content_type)
    finally:
        file.seek(0)
    return facts


# --- Content: a PDF must parse, an image must decode ---------------------------------------------

# Past these the file is refused rather than read further: each bounds the parser's work, so a
# 256 MB upload costs a fraction of a second, never minutes. KYC files are far below them.
PDF_MAX_PAGES = 5_000
PDF_MAX_OBJECTS = 1_000_000
IMAGE_MAX_PIXELS = 50_000_000  # 8K video is 33 MP, an A4 page scanned at 600 dpi 35 MP
# Where %%EOF may sit (Acrobat's rule: in the last 1024 bytes). pypdf itself would search the
# whole file backwards, line by line, which for a large file without one takes minutes.
_PDF_TAIL = 1024

_UNREADABLE_PDF = (
    "This PDF cannot be read: it is damaged or incomplete ({reason}). "
    "Save or download it again from where it came from, and upload the new file."
)
_UNREADABLE_IMAGE = (
    "This {kind} cannot be decoded: it is damaged or incomplete ({reason}). "
    "Export or photograph it again, and upload the new file."
)


def check_content(file: BinaryIO, *, content_type: str) -> None:
    """Refuse a file whose content is not the well-formed PDF, JPEG or PNG its bytes announce."""
    if content_type == PDF:
        _check_pdf(file)
    else:
        _check_image(file, kind=_NAMES[content_type])


def _check_pdf(file: BinaryIO) -> None:
    file.seek(0, 2)
    size = file.tell()
    file.seek(max(0, size - _PDF_TAIL))
    if b"%%EOF" not in file.read():
        raise DocumentRejected(
            _UNREADABLE_PDF.format(reason="it does not end with %%EOF: the file is cut short"),
            code="unreadable",
        )
    file.seek(0)
    try:
        reader = PdfReader(file, strict=True)
        objects = int(reader.trailer.get("/Size", 0))
        if objects > PDF_MAX_OBJECTS:
            raise DocumentRejected(
                f"This PDF has {objects:,} objects; the limit is {PDF_MAX_OBJECTS:,}.",
                code="too_complex",
            )
        if reader.is_encrypted and not _opens_without_password(reader):
            # Password-protected (banks send statements that way, and KYC reviewers hold the
            # password): the structure parsed, and the encryption dictionary must be readable;
            # the page tree is encrypted, so the page count cannot be checked without it.
            if "/Filter" not in reader.trailer["/Encrypt"].get_object():
                raise ValueError("no encryption filter")
            return
        declared = int(reader.trailer["/Root"]["/Pages"]["/Count"])
        if not 0 < declared <= PDF_MAX_PAGES:
            raise DocumentRejected(
                f"This PDF says it has {declared:,} pages; a document needs 1 to "
                f"{PDF_MAX_PAGES:,}.",
                code="too_complex" if declared > 0 else "unreadable",
            )
        if len(reader.pages) != declared:
            raise ValueError("the page tree does not match its page count")
    except DocumentRejected:
        raise
    except Exception as exc:  # untrusted bytes: pypdf fails in many ways
        raise DocumentRejected(
            _UNREADABLE_PDF.format(reason=_reason(exc)), code="unreadable"
        ) from exc


def _opens_without_password(reader: PdfReader) -> bool:
    """Whether the PDF opens with an empty user password (encrypted only against editing)."""
    try:
        return bool(reader.decrypt(""))
    except Exception:  # an encryption scheme pypdf cannot open
        return False


def _check_image(file: BinaryIO, *, kind: str) -> None:
    try:
        with warnings.catch_warnings():
            # Pillow warns past its own limit as it opens; ours, just below, refuses instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(file)
        with image:
            # Before decoding anything: the header's size is what load() would allocate.
            _check_pixels(image.size, kind=kind)
            image.verify()  # the structure and checksums (PNG), without decoding
        file.seek(0)
        with Image.open(file) as image:
            image.load()  # every pixel: a truncated image fails here
    except DocumentRejected:
        raise
    except Image.DecompressionBombError as exc:  # Pillow's own net, should ours ever be raised
        raise DocumentRejected(
            f"This {kind} has too many pixels to be decoded safely; the limit is "
            f"{IMAGE_MAX_PIXELS // 1_000_000} megapixels. Scale it down and upload it again.",
            code="too_complex",
        ) from exc
    except Exception as exc:  # untrusted bytes: Pillow fails in many ways
        raise DocumentRejected(
            _UNREADABLE_IMAGE.format(kind=kind, reason=_reason(exc)), code="unreadable"
        ) from exc


def _check_pixels(size: tuple[int, int], *, kind: str) -> None:
    width, height = size
    if width * height > IMAGE_MAX_PIXELS:
        raise DocumentRejected(
            f"This {kind} is {width} by {height} pixels; the limit is "
            f"{IMAGE_MAX_PIXELS // 1_000_000} megapixels. Scale it down and upload it again.",
            code="too_complex",
        )


def _reason(exc: Exception) -> str:
    """A short, printable account of a parser's complaint (it may quote the file's bytes)."""
    text = "".join(c if c.isprintable() else "?" for c in str(exc) or type(exc).__name__)
    return text[:120] + ("…" if len(text) > 120 else "")


_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]")


# A borrower's reference as the tenant's own systems name them (a customer id, a loan number):
# letters, digits and . _ : - only, so it is safe in a key, a log line, a CSV cell and JSON.
SUBJECT_REF_MAX_CHARS = 64
SUBJECT_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")


def check_subject_ref(value: str | None) -> str:
    """Return the subject reference given with an upload ("" for none), or refuse it clearly."""
    value = (value or "").strip()
    if not value:
        return ""
    if len(value) > SUBJECT_REF_MAX_CHARS:
        raise DocumentRejected(
            f"The subject reference has {len(value):,} characters; "
            f"at most {SUBJECT_REF_MAX_CHARS} are accepted.",
            code="bad_subject_ref",
        )
    if not SUBJECT_REF.match(value):
        raise DocumentRejected(
            "The subject reference may hold only letters, digits and . _ : - "
            "(starting with a letter or digit).",
            code="bad_subject_ref",
        )
    return value


def check_filename(name: str) -> str:
    """Refuse a filename a client declared (the multipart API) that the row could not keep as
    given: pages clean the browser's name instead (clean_filename), an API client is told."""
    limit = Document._meta.get_field("original_filename").max_length or 255
    if not name.strip():
        raise DocumentRejected("Give the file's name in “filename”.", code="bad_filename")
    if len(name) > limit:
        raise DocumentRejected(
            f"The filename has {len(name):,} characters; shorten it to at most {limit}.",
            code="bad_filename",
        )
    if _UNSAFE.search(name):
        raise DocumentRejected(
            "Give the filename alone, without folders (/ or \\) or control characters.",
            code="bad_filename",
        )
    return name


def clean_filename(name: str) -> str:
    """Return the user's filename fit for display and Content-Disposition (never for a key)."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]  # no directories, from any client OS
    name = _UNSAFE.sub("_", name).strip().strip(".") or "document"
    if len(name) > 255:
        stem, dot, extension = name.rpartition(".")
        name = (stem[: 250 - len(extension)] + dot + extension) if dot else name[:255]
    return name
