"""Nothing is orphaned: a failed commit leaves no object, a dead S3 leaves no row."""

import io
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.db import DatabaseError, connections
from django.test import Client

from documents import consistency, reconcile, services
from documents.models import Document
from metis.objectstore.errors import StorageUnavailable
from tenants import db
from tests.conftest import host_of, point_storage_at
from tests.documents.conftest import (
    bucket_keys,
    pdf_bytes,
    serve_app,
    uploaded,
)
from tests.factories import TEST_PASSWORD, TenantFactory, TenantUserFactory
from tests.support.seaweedfs import SeaweedS3


def _owner_sql(statement: str) -> None:
    with connections["owner"].cursor() as cursor:
        cursor.execute(statement)


@pytest.fixture
def failing_commit():
    """A deferred constraint trigger: every insert into document_versions fails at COMMIT."""
    _owner_sql(
        "CREATE FUNCTION test_refuse_commit() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'refused at commit by the test'; END $$"
    )
    _owner_sql(
        "CREATE CONSTRAINT TRIGGER test_refuse_commit AFTER INSERT ON document_versions "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_refuse_commit()"
    )
    try:
        yield
    finally:
        _owner_sql("DROP TRIGGER test_refuse_commit ON document_versions")
        _owner_sql("DROP FUNCTION test_refuse_commit()")
        connections["owner"].close()


@pytest.fixture
def failing_insert():
    """An immediate trigger: the insert itself fails (inside the service's savepoint)."""
    _owner_sql(
        "CREATE FUNCTION test_refuse_insert() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$"
    )
    _owner_sql(
        "CREATE TRIGGER test_refuse_insert BEFORE INSERT ON document_versions "
        "FOR EACH ROW EXECUTE FUNCTION test_refuse_insert()"
    )
    try:
        yield
    finally:
        _owner_sql("DROP TRIGGER test_refuse_insert ON document_versions")
        _owner_sql("DROP FUNCTION test_refuse_insert()")
        connections["owner"].close()


def _document_count(tenant) -> int:
    with db.tenant_context(tenant.pk):
        return Document.objects.for_tenant(tenant).count()


def _upload_as_an_entry_point(tenant) -> None:
    """Upload as a command would: open the context, call the service, sweep once it ended."""
    try:
        with db.tenant_context(tenant.pk):
            services.document_upload(
                tenant=tenant,
                document_type="bank-statement",
                file=io.BytesIO(pdf_bytes()),
                filename="s.pdf",
            )
    finally:
        consistency.purge_uncommitted()


def test_service_upload_whose_commit_fails_leaves_no_object(
    committed_db, failing_commit, s3_bucket, s3_server
):
    tenant = TenantFactory(subdomain="acme")
    with pytest.raises(DatabaseError, match="refused at commit"):
        _upload_as_an_entry_point(tenant)
    assert _document_count(tenant) == 0
    assert bucket_keys(s3_server, s3_bucket) == []


def test_page_upload_whose_commit_fails_leaves_no_object(
    committed_db, failing_commit, s3_bucket, s3_server
):
    # The request's tenant transaction commits after the view returned: the middleware sweeps.
    tenant = TenantFactory(subdomain="acme")
    TenantUserFactory(tenant=tenant, email="alice@acme.example")
    client = Client(HTTP_HOST=host_of(tenant), raise_request_exception=False)
    assert client.post("/login/", {"email": "alice@acme.example", "password": TEST_PASSWORD})
    response = client.post(
        "/documents/upload/",
        {"document_type": "bank-statement", "file": uploaded(pdf_bytes())},
    )
    assert response.status_code == 500
    assert _document_count(tenant) == 0
    assert bucket_keys(s3_server, s3_bucket) == []


def test_upload_whose_insert_fails_leaves_no_object(
    committed_db, failing_insert, s3_bucket, s3_server
):
    tenant = TenantFactory(subdomain="acme")
    with pytest.raises(DatabaseError, match="refused by the test"):
        _upload_as_an_entry_point(tenant)
    assert _document_count(tenant) == 0
    assert bucket_keys(s3_server, s3_bucket) == []


class _StopsServerMidway(io.BytesIO):
    """A file that stops the S3 server once the upload has read `after` bytes of it."""

    def __init__(self, content: bytes, server: SeaweedS3, after: int) -> None:
        super().__init__(content)
        self.server, self.after, self.read_total = server, after, 0

    def read(self, size=-1):
        chunk = super().read(size)
        self.read_total += len(chunk)
        if self.read_total > self.after and self.server.process is not None:
            self.server.stop()
        return chunk


@pytest.mark.committed
def test_s3_stopped_mid_upload_leaves_no_row(tmp_path, settings, tenant):
    server = SeaweedS3(data_dir=tmp_path / "seaweed").start()
    try:
        server.client().create_bucket(Bucket="midway")
        point_storage_at(settings, server, "midway")
        content = pdf_bytes(size=20 * 1024 * 1024)  # multipart: 8 MiB parts
        # The service reads the file once to hash it, then again to upload: stop during the upload.
        file = _StopsServerMidway(content, server, after=len(content) + 9 * 1024 * 1024)
        with db.tenant_context(tenant.pk), pytest.raises(StorageUnavailable):
            services.document_upload(
                tenant=tenant, document_type="bank-statement", file=file, filename="big.pdf"
            )
        assert server.process is None  # it really was stopped mid-way
        assert _document_count(tenant) == 0
        server.start()  # same data directory: what did the dead server keep?
        assert server.client().list_objects_v2(Bucket="midway").get("KeyCount", 0) == 0
        # Parts the dead server kept of the unfinished multipart upload: reconcile aborts them.
        point_storage_at(settings, server, "midway")
        reconcile.storage_drift_repair(drift=reconcile.storage_drift_find(min_age=timedelta(0)))
        assert server.client().list_multipart_uploads(Bucket="midway").get("Uploads", []) == []
        # A spooled page upload (sent from its temporary file) with S3 down: refused, no row.
        server.stop()
        spooled = TemporaryUploadedFile("big.pdf", "application/pdf", len(content), None)
        spooled.write(pdf_bytes(size=3 * 1024 * 1024))
        with db.tenant_context(tenant.pk), pytest.raises(StorageUnavailable):
            services.document_upload(
                tenant=tenant, document_type="bank-statement", file=spooled, filename="big.pdf"
            )
        assert _document_count(tenant) == 0
    finally:
        server.stop()


def _raw_upload(port: int, tenant, session: str, content: bytes, *, abort_after: int | None):
    """POST an upload over a bare socket; with `abort_after`, hang up after that many bytes."""
    import socket

    csrf = "a" * 32
    boundary = "rawboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="document_type"\r\n\r\n'
            f"bank-statement\r\n--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="s.pdf"\r\n'
            "Content-Type: application/pdf\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = (
        "POST /documents/upload/ HTTP/1.1\r\n"
        f"Host: {host_of(tenant)}\r\n"
        f"Cookie: sessionid={session}; csrftoken={csrf}\r\n"
        f"X-CSRFToken: {csrf}\r\nAccept: application/json\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(headers + (body if abort_after is None else body[:abort_after]))
        if abort_after is None:
            return sock.makefile("rb").readline()  # the status line
    return None


def test_client_that_aborts_mid_upload_leaves_neither_object_nor_row(
    committed_db, s3_bucket, s3_server
):
    import urllib.request

    tenant = TenantFactory(subdomain="acme")
    TenantUserFactory(tenant=tenant, email="alice@acme.example")
    signed_in = Client(HTTP_HOST=host_of(tenant))
    signed_in.post("/login/", {"email": "alice@acme.example", "password": TEST_PASSWORD})
    session = signed_in.cookies["sessionid"].value
    with serve_app(threaded=False) as port:
        # The same request, sent whole, is accepted: the abort below is what stops it.
        status = _raw_upload(
            port, tenant, session, pdf_bytes(size=4 * 1024 * 1024), abort_after=None
        )
        assert b" 201 " in status
        _raw_upload(
            port, tenant, session, pdf_bytes(size=4 * 1024 * 1024), abort_after=2 * 1024 * 1024
        )
        # A single-threaded server: this answer comes only after the aborted request ended.
        probe = urllib.request.Request(
            f"http://127.0.0.1:{port}/login/", headers={"Host": host_of(tenant)}
        )
        with urllib.request.urlopen(probe) as response:
            assert response.status == 200
    assert _document_count(tenant) == 1
    assert len(bucket_keys(s3_server, s3_bucket)) == 1
