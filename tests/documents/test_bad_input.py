"""Bad input through the real pages and endpoints (issue 12): each gets a 4xx whose message says
what to fix, and nothing is stored: no row, no S3 object or version, no upload, no event."""

from __future__ import annotations

import io
import os

import pytest
from pypdf import PdfWriter

from documents.models import Document, DocumentAccess, DocumentVersion
from metis.events.models import EventOutbox
from tenants import db
from tests.documents.conftest import jpeg_bytes, pdf_around, png_bytes, uploaded
from tests.documents.test_multipart import post_json, put_part, start

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


def post_upload(client, content: bytes, *, document_type="bank-statement", name="s.pdf", **extra):
    return client.post(
        "/documents/upload/",
        {"document_type": document_type, "file": uploaded(content, name)},
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
