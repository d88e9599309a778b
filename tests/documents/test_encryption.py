"""At rest, SeaweedFS holds only ciphertext of a document: its disk never shows the plaintext.

The check scans every file under the server's data directory (volume .dat files and the filer's
leveldb, where SeaweedFS may inline small files) for a marker unique to this run. The control
case stores the same kind of bytes without SSE and must find the marker, so the scan is real.
"""

import io
import os
import time
import uuid
from pathlib import Path

import pytest

from documents import services
from tenants import db
from tests.documents.conftest import pdf_around


def files_containing(root: Path, marker: bytes) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            try:
                if marker in path.read_bytes():
                    found.append(str(path.relative_to(root)))
            except OSError:
                continue  # a file rotated away while scanning
    return found


def marked_pdf(marker: bytes, size: int) -> bytes:
    # Random filler, so no compression along the way can hide (or reveal) the marker.
    half = os.urandom(size // 2)
    return pdf_around(half + marker + os.urandom(size // 2))


@pytest.mark.parametrize("size", [200, 300_000], ids=["small (inlinable)", "300 KB"])
def test_document_bytes_on_the_seaweedfs_disk_are_not_plaintext(s3_bucket, s3_server, tenant, size):
    marker = f"PLAINTEXT-MARKER-{uuid.uuid4().hex}".encode()
    with db.tenant_context(tenant.pk):
        document = services.document_upload(
            tenant=tenant,
            document_type="bank-statement",
            file=io.BytesIO(marked_pdf(marker, size)),
            filename="secret.pdf",
        )
    control = f"CONTROL-MARKER-{uuid.uuid4().hex}".encode()
    s3_server.client().put_object(
        Bucket=s3_bucket, Key="control/unencrypted.pdf", Body=marked_pdf(control, size)
    )
    time.sleep(0.5)  # let the filer and volume server write through
    assert files_containing(s3_server.data_dir, control), "the scan cannot see plaintext at all"
    assert files_containing(s3_server.data_dir, marker) == []
    # ... and yet the document reads back as the plaintext through S3.
    body = s3_server.client().get_object(Bucket=s3_bucket, Key=document.storage_key)["Body"]
    assert marker in body.read()
