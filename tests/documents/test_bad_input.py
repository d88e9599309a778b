"""Bad input through the real pages and endpoints (issue 12): each gets a 4xx whose message says
what to fix, and nothing is stored: no row, no S3 object or version, no upload, no event."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket

import pytest
from django.test import Client
from pypdf import PdfWriter

from documents.models import Document, DocumentAccess, DocumentVersion
from metis import body_deadline
from metis.events.models import EventOutbox
from tenants import db
from tests.conftest import host_of
from tests.documents.conftest import (
    jpeg_bytes,
    pdf_around,
    pdf_bytes,
    png_bytes,
    serve_app,
    uploaded,
)
from tests.documents.test_multipart import post_json, put_part, start
from tests.factories import TEST_PASSWORD, TenantFactory, TenantUserFactory

MiB = 1024 * 1024
TRUNCATED_PDF = b"%PDF-1.4" + os.urandom(100)
UNREADABLE_PDF = "This PDF cannot be read: it is damaged or incomplete"


def assert_nothing_stored(tenant, s3_server, s3_bucket) -> None:
    with db.tenant_context(tenant.pk):
        assert not Document.objects.for_tenant(tenant).exists()
        assert not DocumentVersion.objects.for_tenant(tenant).exists()
        assert not DocumentAccess.objects.for_tenant(tenant).exists()
        events = EventOutbox.objects.for_tenant(tenant).filter(event_type__startswith="document.")
        assert not events.exists()
    s3 = s3_server.client()
    listing = s3.list_object_versions(Bucket=s3_bucket)
    assert listing.get("Versions", []) == [] and listing.get("DeleteMarkers", []) == []
    assert s3.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def post_upload(
    client, content: bytes, *, document_type="bank-statement", name="s.pdf", subject_ref="", **extra
):
    return client.post(
        "/documents/upload/",
        {
            "document_type": document_type,
            "file": uploaded(content, name),
            "subject_ref": subject_ref,
        },
        **extra,
    )


def xhr_error(response) -> str:
    return response.json()["errors"]["file"][0]["message"]


# --- 1. The content: a PDF must parse, an image must decode ----------------------------------


def test_truncated_pdf_through_the_page_is_refused(s3_bucket, s3_server, tenant_client, tenant):
    response = post_upload(tenant_client, TRUNCATED_PDF)

    assert response.status_code == 400
    page = response.content.decode()
    assert UNREADABLE_PDF in page and "upload the new file" in page
    assert_nothing_stored(tenant, s3_server, s3_bucket)


def test_truncated_pdf_through_xhr_is_refused(s3_bucket, s3_server, tenant_client, tenant):
    response = post_upload(tenant_client, TRUNCATED_PDF, HTTP_ACCEPT="application/json")

    assert response.status_code == 400
    assert xhr_error(response).startswith(UNREADABLE_PDF)
    assert_nothing_stored(tenant, s3_server, s3_bucket)


def test_pdf_cut_off_before_its_end_is_refused(s3_bucket, s3_server, tenant_client, tenant):
    whole = pdf_around(b"% a statement\n" * 1000)
    response = post_upload(tenant_client, whole[:-300], HTTP_ACCEPT="application/json")

    assert response.status_code == 400
    assert "cut short" in xhr_error(response)
    assert_nothing_stored(tenant, s3_server, s3_bucket)


def test_pdf_with_a_broken_cross_reference_table_is_refused(
    s3_bucket, s3_server, tenant_client, tenant
):
    whole = pdf_around(b"% a statement\n")
    xref = whole.rindex(b"startxref\n") + len(b"startxref\n")
    broken = whole[:xref] + b"9" + whole[xref + 1 :]  # startxref points into nothing

    response = post_upload(tenant_client, broken, HTTP_ACCEPT="application/json")

    assert response.status_code == 400
    assert xhr_error(response).startswith(UNREADABLE_PDF)
    assert_nothing_stored(tenant, s3_server, s3_bucket)


def test_truncated_pdf_through_presigned_multipart_is_refused_and_its_object_deleted(
    s3_bucket, s3_server, tenant_client, tenant
):
    status, started = start(tenant_client, TRUNCATED_PDF)
    assert status == 201, started
    etag = put_part(started["parts"][0]["url"], TRUNCATED_PDF)

    status, error = post_json(
        tenant_client,
        "/documents/multipart/complete/",
        {"ticket": started["ticket"], "parts": [{"number": 1, "etag": etag}]},
    )

    assert (status, error["code"]) == (400, "unreadable"), error
    assert error["error"].startswith(UNREADABLE_PDF)
    assert_nothing_stored(tenant, s3_server, s3_bucket)


@pytest.mark.parametrize(
    ("make", "document_type", "kind"),
    [(png_bytes, "image", "PNG"), (jpeg_bytes, "image", "JPEG"), (png_bytes, "pan", "PNG")],
)
def test_truncated_images_are_refused(
    s3_bucket, s3_server, tenant_client, tenant, make, document_type, kind
):
    whole = make()
    response = post_upload(
        tenant_client,
        whole[: len(whole) // 2],
        document_type=document_type,
        name="photo",
        HTTP_ACCEPT="application/json",
    )

    assert response.status_code == 400
    assert xhr_error(response).startswith(f"This {kind} cannot be decoded")
    assert_nothing_stored(tenant, s3_server, s3_bucket)


def test_an_image_of_too_many_pixels_is_refused_before_it_is_decoded(
    s3_bucket, s3_server, tenant_client, tenant
):
    from PIL import Image

    bomb = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(bomb, "PNG")  # 100 megapixels in a few kilobytes

    response = post_upload(
        tenant_client,
        bomb.getvalue(),
        document_type="image",
        name="bomb.png",
        HTTP_ACCEPT="application/json",
    )

    assert response.status_code == 400
    assert xhr_error(response) == (
        "This PNG is 10000 by 10000 pixels; the limit is 50 megapixels. "
        "Scale it down and upload it again."
    )
    assert_nothing_stored(tenant, s3_server, s3_bucket)


def test_a_password_protected_pdf_is_accepted(s3_bucket, tenant_client, tenant):
    # Banks send statements that way; the reviewer is given the password with the application.
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    writer.add_metadata({"/Subject": os.urandom(8).hex()})
    writer.encrypt(user_password="DOB01011990", owner_password=os.urandom(8).hex())
    content = io.BytesIO()
    writer.write(content)

    response = post_upload(tenant_client, content.getvalue(), HTTP_ACCEPT="application/json")

    assert response.status_code == 201, response.content


# --- 2. JSON bodies: depth and size -----------------------------------------------------------


def test_json_nested_100000_deep_is_a_400_not_a_500(s3_bucket, s3_server, tenant_client, tenant):
    body = "[" * 100_000 + "]" * 100_000
    response = tenant_client.post(
        "/documents/multipart/start/", body, content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()["error"] == (
        "The JSON is nested too deeply; at most 16 levels are accepted."
    )
    assert_nothing_stored(tenant, s3_server, s3_bucket)


def test_json_nested_past_the_limit_but_parseable_is_a_400(s3_bucket, tenant_client):
    body = {"filename": "s.pdf", "extra": json.loads("[" * 20 + "]" * 20)}
    status, error = post_json(tenant_client, "/documents/multipart/start/", body)

    assert status == 400 and "nested too deeply" in error["error"]


def test_a_10_mb_json_body_is_a_413_with_a_json_message(
    s3_bucket, s3_server, tenant_client, tenant
):
    body = json.dumps({"filename": "x" * 10 * MiB})
    response = tenant_client.post(
        "/documents/multipart/complete/", body, content_type="application/json"
    )

    assert response.status_code == 413
    assert response.json()["error"] == (
        "The body is 10.0 MB; the limit is 1.0 MB. Send less at a time."
    )
    assert_nothing_stored(tenant, s3_server, s3_bucket)


def test_a_json_body_that_is_not_json_says_so(s3_bucket, tenant_client):
    response = tenant_client.post(
        "/documents/multipart/start/", b"{'size': 1}", content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()["error"].startswith("The body is not valid JSON:")


# --- 3. multipart/start: every field ----------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "status", "field", "message"),
    [
        ({"size": -1}, 400, "size", "The size -1 is negative; give the file's size in bytes."),
        ({"size": 0}, 400, "size", "The file is empty."),
        ({"size": 300 * MiB}, 413, "size", "The file is 300.0 MB; the limit is 256.0 MB."),
        ({"size": "108"}, 400, "size", "Give “size” as a whole number."),
        ({"size": True}, 400, "size", "Give “size” as a whole number."),
        (
            {"filename": "x" * 100_000},
            400,
            "filename",
            "The filename has 100,000 characters; shorten it to at most 255.",
        ),
        (
            {"filename": "../../etc/passwd"},
            400,
            "filename",
            "Give the filename alone, without folders (/ or \\) or control characters.",
        ),
        (
            {"filename": "statement\r\n.pdf"},
            400,
            "filename",
            "Give the filename alone, without folders (/ or \\) or control characters.",
        ),
        ({"filename": "  "}, 400, "filename", "Give the file's name in “filename”."),
        ({"filename": 7}, 400, "filename", "Give “filename” as a string."),
        ({"sha256": "abc"}, 400, "sha256", "Give the file's SHA-256 as 64 hex digits."),
        (
            {"content_type": "text/plain"},
            400,
            "content_type",
            "The content type “text/plain” is not accepted; declare one of "
            "application/pdf, image/jpeg, image/png.",
        ),
        (
            {"document_type": "passport"},
            400,
            "document_type",
            "Unknown document type “passport”; use one of pan, aadhar, bank-statement, "
            "image, report.",
        ),
        ({"document_id": "not-a-uuid"}, 400, "document_id", "“document_id” is not a document id."),
    ],
)
def test_multipart_start_refuses_each_bad_field_naming_it(
    s3_bucket, s3_server, tenant_client, tenant, overrides, status, field, message
):
    got, error = start(tenant_client, TRUNCATED_PDF, **overrides)

    assert (got, error.get("field"), error["error"]) == (status, field, message)
    assert_nothing_stored(tenant, s3_server, s3_bucket)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"parts": [{"number": 1, "etag": "x" * 1000}]}, "etag"),
        ({"parts": [{"number": "1", "etag": "x"}]}, "parts"),
        ({"parts": "1"}, "parts"),
        ({"parts": [{"number": 1}] * 10_001}, "parts"),
        ({"ticket": "t" * 5000, "parts": [{"number": 1, "etag": "x"}]}, "ticket"),
    ],
)
def test_multipart_complete_refuses_bad_fields_naming_them(s3_bucket, tenant_client, body, field):
    _, started = start(tenant_client, TRUNCATED_PDF)
    status, error = post_json(
        tenant_client, "/documents/multipart/complete/", {"ticket": started["ticket"], **body}
    )

    assert (status, error.get("field")) == (400, field), error


# --- 4. Bodies that cannot be read whole, over real HTTP --------------------------------------


@pytest.fixture
def http_session(request, committed_db, s3_bucket):
    """A tenant, its signed-in session and the app on a real HTTP port (wsgiref, one thread);
    parametrized indirectly with a wrapper, the app wrapped as metis/wsgi.py wraps it."""
    tenant = TenantFactory(subdomain="acme")
    TenantUserFactory(tenant=tenant, email="alice@acme.example")
    client = Client(HTTP_HOST=host_of(tenant))
    client.post("/login/", {"email": "alice@acme.example", "password": TEST_PASSWORD})
    with serve_app(threaded=False, wrap=getattr(request, "param", None)) as port:
        yield tenant, client.cookies["sessionid"].value, port


def send_raw(port: int, tenant, session: str, path: str, headers: str, body: bytes) -> tuple:
    csrf = "a" * 32
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host_of(tenant)}\r\nConnection: close\r\n"
        f"Cookie: sessionid={session}; csrftoken={csrf}\r\nX-CSRFToken: {csrf}\r\n"
        f"Accept: application/json\r\n{headers}\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request + body)
        sock.shutdown(socket.SHUT_WR)  # the body ends here, whatever it announced
        reply = sock.makefile("rb").read()
    head, _, payload = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload)


def multipart_body(content: bytes, *, closed: bool) -> bytes:
    return (
        b'--B\r\nContent-Disposition: form-data; name="document_type"\r\n\r\nbank-statement\r\n'
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="s.pdf"\r\n'
        b"Content-Type: application/pdf\r\n\r\n" + content + (b"\r\n--B--\r\n" if closed else b"")
    )


def chunked(body: bytes) -> bytes:
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)


def test_an_upload_without_its_closing_boundary_is_incomplete_not_a_missing_field(
    http_session, s3_server, s3_bucket
):
    tenant, session, port = http_session
    body = multipart_body(pdf_around(b"% statement\n" * 100), closed=False)

    status, reply = send_raw(
        port,
        tenant,
        session,
        "/documents/upload/",
        f"Content-Type: multipart/form-data; boundary=B\r\nContent-Length: {len(body)}\r\n",
        body,
    )

    assert status == 400
    assert reply["errors"]["file"][0]["message"] == (
        "The upload was incomplete: the request ended before the file did. Nothing was saved; "
        "upload the file again."
    )
    assert_nothing_stored(tenant, s3_server, s3_bucket)


def test_an_upload_cut_short_of_its_content_length_is_incomplete(
    http_session, s3_server, s3_bucket
):
    tenant, session, port = http_session
    body = multipart_body(pdf_around(b"% statement\n" * 100), closed=True)

    status, reply = send_raw(  # the client stops sending half-way, then waits for the answer
        port,
        tenant,
        session,
        "/documents/upload/",
        f"Content-Type: multipart/form-data; boundary=B\r\nContent-Length: {len(body)}\r\n",
        body[: len(body) // 2],
    )

    assert status == 400
    assert reply["errors"]["file"][0]["message"].startswith("The upload was incomplete")
    assert_nothing_stored(tenant, s3_server, s3_bucket)


def test_a_chunked_upload_without_content_length_is_refused_saying_why(
    http_session, s3_server, s3_bucket
):
    tenant, session, port = http_session
    body = multipart_body(pdf_around(b"% statement\n"), closed=True)

    status, reply = send_raw(
        port,
        tenant,
        session,
        "/documents/upload/",
        "Content-Type: multipart/form-data; boundary=B\r\nTransfer-Encoding: chunked\r\n",
        chunked(body),
    )

    assert status == 411
    assert reply["errors"]["file"][0]["message"] == (
        "The upload came chunked, without a Content-Length header, so it could not be read; "
        "nothing was saved. Send the file with its Content-Length."
    )
    assert_nothing_stored(tenant, s3_server, s3_bucket)


def test_a_chunked_json_body_without_content_length_is_refused_saying_why(
    http_session, s3_server, s3_bucket
):
    tenant, session, port = http_session
    body = json.dumps({"filename": "s.pdf", "size": 10, "sha256": hashlib.sha256().hexdigest()})

    status, reply = send_raw(
        port,
        tenant,
        session,
        "/documents/multipart/start/",
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n",
        chunked(body.encode()),
    )

    assert status == 411
    assert reply["error"] == (
        "The body came chunked, without a Content-Length header, and could not be read; "
        "send it with a Content-Length."
    )
    assert_nothing_stored(tenant, s3_server, s3_bucket)


def as_in_production(app):
    return body_deadline.RequestBodyDeadline(app, timeout=20, min_rate=500, max_bytes=MiB)


@pytest.mark.parametrize("http_session", [as_in_production], indirect=True)
@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        (
            "/documents/upload/",
            "multipart/form-data; boundary=B",
            multipart_body(TRUNCATED_PDF, closed=True),
        ),
        ("/documents/multipart/start/", "application/json", b'{"filename": "s.pdf"}'),
    ],
)
def test_a_chunked_body_is_refused_with_one_answer_before_django_reads_it(
    http_session, s3_server, s3_bucket, path, content_type, body
):
    tenant, session, port = http_session

    status, reply = send_raw(
        port,
        tenant,
        session,
        path,
        f"Content-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n",
        chunked(body),
    )

    assert status == 411
    assert reply == {"error": body_deadline.CHUNKED_MESSAGE}
    assert "Send it again with its Content-Length" in reply["error"]
    assert_nothing_stored(tenant, s3_server, s3_bucket)


# --- The subject reference: on every entrance, a 400 naming the field, nothing stored ---------

BAD_SUBJECT_REFS = pytest.mark.parametrize(
    "subject_ref", ["C" * 65, "CUST 1", "../etc", "CUST-1<script>"], ids=str.__len__
)


@BAD_SUBJECT_REFS
def test_a_malformed_subject_ref_on_the_upload_form_is_a_400(
    s3_bucket, s3_server, tenant_client, tenant, subject_ref
):
    response = post_upload(tenant_client, pdf_bytes(), subject_ref=subject_ref)

    assert response.status_code == 400
    page = response.content.decode()
    assert 'id="id_subject_ref"' in page
    assert "at most 64" in page or "may hold only" in page
    assert_nothing_stored(tenant, s3_server, s3_bucket)


@BAD_SUBJECT_REFS
def test_a_malformed_subject_ref_on_the_json_upload_is_a_400_naming_it(
    s3_bucket, s3_server, tenant_client, tenant, subject_ref
):
    response = post_upload(
        tenant_client,
        pdf_bytes(),
        subject_ref=subject_ref,
        HTTP_ACCEPT="application/json",
    )

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["subject_ref"]
    assert_nothing_stored(tenant, s3_server, s3_bucket)


@BAD_SUBJECT_REFS
def test_a_malformed_subject_ref_on_multipart_start_is_a_400_naming_it(
    s3_bucket, s3_server, tenant_client, tenant, subject_ref
):
    status, error = start(tenant_client, pdf_bytes(), subject_ref=subject_ref)

    assert (status, error.get("field")) == (400, "subject_ref")
    assert_nothing_stored(tenant, s3_server, s3_bucket)


@BAD_SUBJECT_REFS
def test_a_malformed_subject_ref_on_the_admin_add_form_is_refused(
    s3_bucket, s3_server, staff_client, tenant, subject_ref
):
    staff_client.post("/admin/tenant-context/", {"tenant": str(tenant.pk)})
    response = staff_client.post(
        "/admin/documents/document/add/",
        {
            "document_type": "bank-statement",
            "file": uploaded(pdf_bytes(), "s.pdf"),
            "subject_ref": subject_ref,
        },
    )

    assert response.status_code == 200  # the admin's way: the form again, with its errors
    assert response.context["adminform"].form.errors.keys() == {"subject_ref"}
    assert_nothing_stored(tenant, s3_server, s3_bucket)
