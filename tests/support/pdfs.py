"""Well-formed PDFs for tests and benchmarks: uploads must parse (documents.validation)."""

from __future__ import annotations

from typing import BinaryIO

HEADER = b"%PDF-1.7\n"


def pdf_around(content: bytes) -> bytes:
    """A one-page PDF whose page content stream is `content`, kept as it is."""
    return HEADER + _objects(content, at=len(HEADER))


def write_pdf(file: BinaryIO, size: int, filler=None) -> None:
    """Write a one-page PDF of exactly `size` bytes to `file`: the header, a comment, then
    `filler(n)` bytes (zeros left sparse when None) that no reader touches, for the
    cross-reference table points past them to the objects at the end."""
    tail = _objects(b"% large\n", at=size)
    at = size - len(tail)
    tail = _objects(b"% large\n", at=at)
    assert at + len(tail) == size, "the offsets' widths changed; pick another size"
    file.write(HEADER + b"%")
    written = len(HEADER) + 1
    if filler is None:
        file.seek(at)
    else:
        while written < at:
            chunk = filler(min(4 * 1024 * 1024, at - written))
            file.write(chunk)
            written += len(chunk)
    file.write(tail)


def _objects(content: bytes, *, at: int) -> bytes:
    """The objects, cross-reference table and trailer of a one-page PDF, starting at `at`."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
    ]
    out = bytearray()
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(at + len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = at + len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)
