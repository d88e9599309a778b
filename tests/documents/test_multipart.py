"""Presigned multipart upload, the way a browser does it: JSON to the app, PUTs straight to S3."""

import hashlib
import json
import urllib.error
import urllib.request

import pytest
from django.core import signing

from documents import multipart
from documents.models import Document, DocumentVersion
from tenants import db
from tests.documents.conftest import bucket_keys, pdf_bytes

MiB = 1024 * 1024


def post_json(client, path: str, body: dict):
    response = client.post(
        path, json.dumps(body), content_type="application/json", HTTP_ACCEPT="application/json"
    )
    return response.status_code, response.json()


def put_part(url: str, data: bytes) -> str:
    request = urllib.request.Request(url, data=data, method="PUT")
    with urllib.request.urlopen(request) as response:
        assert response.status == 200
        return response.headers["ETag"]


def start(client, content: bytes, **overrides):
    body = {
        "document_type": "bank-statement",
        "filename": "statement-2026.pdf",
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "content_type": "application/pdf",
        **overrides,
    }
    return post_json(client, "/documents/multipart/start/", body)


def send_parts(started: dict, content: bytes) -> list[dict]:
    size = started["part_size"]
    return [
        {
            "number": part["number"],
            "etag": put_part(part["url"], content[(n) * size : (n + 1) * size]),
        }
        for n, part in enumerate(started["parts"])
    ]


def test_multipart_upload_through_presigned_part_urls_creates_the_document(
    s3_bucket, s3_server, tenant_client, tenant
):
    content = pdf_bytes(size=17 * MiB)  # three parts of 8 MiB, 8 MiB, 1 MiB
    status, started = start(tenant_client, content)
    assert status == 201, started
    assert started["part_count"] == 3 and started["key"].startswith(f"tenants/{tenant.pk}/")
    parts = send_parts(started, content)
    status, done = post_json(
        tenant_client,
        "/documents/multipart/complete/",
        {"ticket": started["ticket"], "parts": parts},
    )
    assert status == 201, done
    with db.tenant_context(tenant.pk):
        document = Document.objects.get(pk=done["id"])
    assert document.size_bytes == len(content)
    assert document.sha256 == hashlib.sha256(content).hexdigest()
    assert document.original_filename == "statement-2026.pdf"
    head = s3_server.client().head_object(Bucket=s3_bucket, Key=document.storage_key)
    assert head["ServerSideEncryption"] == "AES256"
    assert document.etag == head["ETag"]  # tiering's precondition (documents/tiering.py)
    download = tenant_client.get(f"/documents/{document.pk}/download/")
    with urllib.request.urlopen(download.url) as response:
        assert hashlib.sha256(response.read()).hexdigest() == document.sha256


def test_multipart_replace_adds_a_version(s3_bucket, tenant_client, tenant):
    first = pdf_bytes()
    _, started = start(tenant_client, first)
    post_json(
        tenant_client,
        "/documents/multipart/complete/",
        {"ticket": started["ticket"], "parts": send_parts(started, first)},
    )
    with db.tenant_context(tenant.pk):
        document = Document.objects.get()
    second = pdf_bytes()
    _, started = start(tenant_client, second, document_id=str(document.pk))
    status, done = post_json(
        tenant_client,
        "/documents/multipart/complete/",
        {"ticket": started["ticket"], "parts": send_parts(started, second)},
    )
    assert status == 201 and done["id"] == str(document.pk)
    with db.tenant_context(tenant.pk):
        assert DocumentVersion.objects.filter(document=document).count() == 2


def test_checksum_mismatch_is_refused_and_leaves_no_object(
    s3_bucket, s3_server, tenant_client, tenant
):
    content = pdf_bytes()
    _, started = start(tenant_client, content)
    tampered = content[:-1] + b"X"  # same size, different bytes
    status, error = post_json(
        tenant_client,
        "/documents/multipart/complete/",
        {"ticket": started["ticket"], "parts": send_parts(started, tampered)},
    )
    assert status == 400 and error["code"] == "checksum_mismatch"
    assert "SHA-256 does not match" in error["error"]
    assert bucket_keys(s3_server, s3_bucket) == []
    with db.tenant_context(tenant.pk):
        assert not Document.objects.exists()


def test_declared_type_must_match_the_sniffed_content(s3_bucket, s3_server, tenant_client):
    content = b"\x89PNG\r\n\x1a\n" + b"not really a pdf" * 10
    _, started = start(tenant_client, content, document_type="pan")  # declared PDF
    status, error = post_json(
        tenant_client,
        "/documents/multipart/complete/",
        {"ticket": started["ticket"], "parts": send_parts(started, content)},
    )
    assert status == 400 and error["code"] == "content_mismatch"
    assert bucket_keys(s3_server, s3_bucket) == []


def test_missing_parts_are_refused_before_completing(s3_bucket, s3_server, tenant_client):
    content = pdf_bytes(size=9 * MiB)
    _, started = start(tenant_client, content)
    first = started["parts"][0]
    parts = [{"number": 1, "etag": put_part(first["url"], content[: started["part_size"]])}]
    status, error = post_json(
        tenant_client,
        "/documents/multipart/complete/",
        {"ticket": started["ticket"], "parts": parts},
    )
    assert status == 400 and error["code"] == "size_mismatch"
    assert bucket_keys(s3_server, s3_bucket) == []


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"size": 0}, "empty"),
        ({"sha256": "abc"}, "bad_checksum"),
        ({"content_type": "text/plain"}, "unknown_content"),
        ({"content_type": "image/png"}, "content_not_allowed"),  # bank statements are PDFs
        ({"document_type": "passport"}, "bad_type"),
    ],
)
def test_start_refuses_bad_declarations(s3_bucket, tenant_client, overrides, code):
    status, error = start(tenant_client, pdf_bytes(), **overrides)
    assert (status, error["code"]) == (400, code), error


def test_abort_drops_the_parts(s3_bucket, s3_server, tenant_client):
    content = pdf_bytes()
    _, started = start(tenant_client, content)
    send_parts(started, content)
    status, _ = post_json(
        tenant_client, "/documents/multipart/abort/", {"ticket": started["ticket"]}
    )
    assert status == 200
    assert s3_server.client().list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


# --- Another tenant's upload, by every route ------------------------------------------------------


def test_tenant_cannot_use_another_tenants_upload_ticket(
    s3_bucket, s3_server, tenant_client, other_client, other_tenant
):
    content = pdf_bytes()
    _, theirs = start(other_client, content)  # B's upload, B's prefix
    assert theirs["key"].startswith(f"tenants/{other_tenant.pk}/")
    ticket = {"ticket": theirs["ticket"]}
    status, _ = post_json(
        tenant_client, "/documents/multipart/parts/", {**ticket, "part_numbers": [1]}
    )
    assert status == 404
    parts = send_parts(theirs, content)
    status, _ = post_json(
        tenant_client, "/documents/multipart/complete/", {**ticket, "parts": parts}
    )
    assert status == 404
    status, _ = post_json(tenant_client, "/documents/multipart/abort/", ticket)
    assert status == 404
    assert bucket_keys(s3_server, s3_bucket) == []  # still B's, unfinished, untouched
    status, done = post_json(
        other_client, "/documents/multipart/complete/", {**ticket, "parts": parts}
    )
    assert status == 201, done


def test_a_key_under_another_tenants_prefix_is_refused_even_with_a_valid_signature(
    s3_bucket, tenant, other_tenant, tenant_client
):
    # As if the signing key leaked: the services still check the key's tenant prefix.
    forged = multipart.MultipartUpload(
        tenant_id=str(tenant.pk),
        key=f"tenants/{other_tenant.pk}/documents/bank-statements/x/y.pdf",
        upload_id="whatever",
        document_id="00000000-0000-0000-0000-000000000000",
        document_type="bank-statement",
        filename="x.pdf",
        size_bytes=10,
        sha256="0" * 64,
        content_type="application/pdf",
        replacing=False,
        part_size=multipart.MIN_PART_SIZE,
    )
    for path, extra in [
        ("/documents/multipart/parts/", {"part_numbers": [1]}),
        ("/documents/multipart/complete/", {"parts": []}),
        ("/documents/multipart/abort/", {}),
    ]:
        status, error = post_json(tenant_client, path, {"ticket": forged.ticket, **extra})
        assert status == 404 and "outside your organisation" in error["error"]
    with pytest.raises(multipart.UploadRefused):
        multipart.multipart_upload_part_urls(tenant=tenant, upload=forged, part_numbers=[1])
    with db.tenant_context(tenant.pk), pytest.raises(multipart.UploadRefused):
        multipart.multipart_upload_complete(tenant=tenant, upload=forged, parts=[])


def test_a_tampered_ticket_is_refused(s3_bucket, tenant_client):
    _, started = start(tenant_client, pdf_bytes())
    payload, _, signature = started["ticket"].rpartition(":")
    status, _ = post_json(
        tenant_client,
        "/documents/multipart/parts/",
        {"ticket": payload + ":" + signature[::-1], "part_numbers": [1]},
    )
    assert status == 404
    with pytest.raises(signing.BadSignature):
        signing.loads(payload + ":" + signature[::-1], salt="documents.multipart")


def test_replacing_another_tenants_document_by_multipart_is_a_404(
    s3_bucket, tenant_client, other_tenant
):
    from tests.documents.conftest import upload

    theirs = upload(other_tenant)
    status, _ = start(tenant_client, pdf_bytes(), document_id=str(theirs.pk))
    assert status == 404


def test_part_url_cannot_be_used_for_another_key(s3_bucket, tenant_client, other_tenant):
    # A part URL is signed for one key: pointing it at another tenant's key breaks the signature.
    _, started = start(tenant_client, pdf_bytes())
    url = started["parts"][0]["url"]
    forged = url.replace(started["key"].split("/")[1], str(other_tenant.pk))
    with pytest.raises(urllib.error.HTTPError) as error:
        put_part(forged, b"%PDF-1.7 evil")
    assert error.value.code == 403


def test_multipart_needs_a_signed_in_user(s3_bucket, tenant):
    from django.test import Client

    from tests.conftest import host_of

    status = (
        Client(HTTP_HOST=host_of(tenant))
        .post("/documents/multipart/start/", "{}", content_type="application/json")
        .status_code
    )
    assert status == 401


def test_part_numbers_outside_the_upload_are_refused(s3_bucket, tenant_client):
    _, started = start(tenant_client, pdf_bytes())
    status, error = post_json(
        tenant_client,
        "/documents/multipart/parts/",
        {"ticket": started["ticket"], "part_numbers": [2]},
    )
    assert (status, error["code"]) == (400, "bad_part")


def test_wrong_etags_are_refused_and_leave_nothing(s3_bucket, s3_server, tenant_client):
    content = pdf_bytes()
    _, started = start(tenant_client, content)
    send_parts(started, content)
    status, error = post_json(
        tenant_client,
        "/documents/multipart/complete/",
        {"ticket": started["ticket"], "parts": [{"number": 1, "etag": '"not-the-etag"'}]},
    )
    assert (status, error["code"]) == (400, "incomplete")
    assert bucket_keys(s3_server, s3_bucket) == []
    assert s3_server.client().list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
