"""Fixtures and file makers for the documents tests."""

from __future__ import annotations

import io
import threading
import uuid
from contextlib import contextmanager
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.wsgi import get_wsgi_application
from django.test import Client

from documents import services
from metis.objectstore import store
from tenants import db
from tests.conftest import host_of
from tests.factories import TEST_PASSWORD
from tests.support.pdfs import pdf_around


def pdf_bytes(marker: bytes | str = b"", size: int = 0) -> bytes:
    """A well-formed one-page PDF, unique per call (so duplicate detection stays out of the way),
    `size` bytes long when given: the page's content stream is padded with a PDF comment."""
    if isinstance(marker, str):
        marker = marker.encode()
    content = b"% " + uuid.uuid4().hex.encode() + b"\n% " + marker + b"\n"
    pdf = pdf_around(content)
    if size > len(pdf):
        padding = size - len(pdf)
        while len(pdf) != size:  # the padding also lengthens /Length and startxref
            pdf = pdf_around(content + b"%" + b"0" * max(0, padding - 1) + b"\n")
            padding += size - len(pdf)
    return pdf


def _image(format: str) -> bytes:
    from PIL import Image

    unique = uuid.uuid4().bytes
    image = Image.frombytes("RGB", (4, 4), unique * 3)
    buffer = io.BytesIO()
    image.save(buffer, format=format, **({"comment": unique} if format == "JPEG" else {}))
    return buffer.getvalue()


def png_bytes() -> bytes:
    return _image("PNG")


def jpeg_bytes() -> bytes:
    return _image("JPEG")


def uploaded(content: bytes, name: str = "statement.pdf") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")


def upload(
    tenant, content: bytes | None = None, *, document_type="bank-statement", name=None, **kw
):
    """Upload through the service, as the pages and the admin do: in the tenant's context."""
    content = pdf_bytes() if content is None else content
    with db.tenant_context(tenant.pk):
        return services.document_upload(
            tenant=tenant,
            document_type=document_type,
            file=io.BytesIO(content),
            filename=name or "statement.pdf",
            **kw,
        )


@pytest.fixture
def other_client(other_tenant, other_tenant_user):
    """A client signed in as the other tenant's user on the other tenant's host."""
    client = Client(HTTP_HOST=host_of(other_tenant))
    response = client.post("/login/", {"email": other_tenant_user.email, "password": TEST_PASSWORD})
    assert response.status_code == 302
    return client


def bucket_keys(s3_server, bucket: str) -> list[str]:
    listing = s3_server.client().list_object_versions(Bucket=bucket)
    return sorted(v["Key"] for v in listing.get("Versions", []))


def stored_keys(prefix: str = "") -> list[str]:
    """Every key with a stored version in the configured bucket, read from the S3 server."""
    return sorted({version["Key"] for version in store.documents_store().versions(prefix)})


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args) -> None:
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


@contextmanager
def serve_app(*, threaded: bool, wrap=None):
    """Serve the app (static files included) over real HTTP from a thread; yield the port.

    Single-threaded, requests are handled one after another: a second request's answer means
    the first one is finished. Needs committed_db: the server thread has its own connection.
    `wrap` wraps Django's WSGI app as production's metis/wsgi.py does (the body deadline).
    """
    app = get_wsgi_application()
    server = make_server(
        "127.0.0.1",
        0,
        StaticFilesHandler(wrap(app) if wrap else app),
        server_class=_ThreadingServer if threaded else WSGIServer,
        handler_class=_Quiet,
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
