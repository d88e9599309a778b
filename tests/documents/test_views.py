"""Tenant pages: list, upload, download, replace, delete; and never another tenant's document."""

import time
import urllib.request

import pytest
from django.core import signing
from django.test import Client

from documents import downloads
from documents.models import AccessAction, Document, DocumentAccess
from tenants import db
from tests.conftest import host_of
from tests.documents.conftest import local_files, pdf_bytes, png_bytes, upload, uploaded


def post_upload(client, content: bytes, document_type="bank-statement", name="s.pdf", **extra):
    return client.post(
        "/documents/upload/",
        {"document_type": document_type, "file": uploaded(content, name)},
        **extra,
    )


def only_document(tenant) -> Document:
    with db.tenant_context(tenant.pk):
        return Document.objects.for_tenant(tenant).get()


def test_upload_page_has_the_drag_and_drop_widget(tenant_client):
    content = tenant_client.get("/documents/upload/").content
    assert b'data-upload-form="upload-form"' in content and b"<progress" in content
    assert b"/static/documents/upload.js" in content  # vendored, no CDN
    assert b"cdn" not in content.lower()


def test_upload_through_the_page_then_download(s3_bucket, tenant_client, tenant, tenant_user):
    content = pdf_bytes()
    response = post_upload(tenant_client, content, name="Kontoauszug März.pdf")
    document = only_document(tenant)
    assert response.status_code == 302 and response.url == f"/documents/{document.pk}/"
    assert document.uploaded_by_id == tenant_user.pk
    listing = tenant_client.get("/documents/").content.decode()
    assert "Kontoauszug März.pdf" in listing
    download = tenant_client.get(f"/documents/{document.pk}/download/")
    assert download.status_code == 302
    with urllib.request.urlopen(download.url) as response:
        assert response.read() == content
        assert (
            "filename*=UTF-8''Kontoauszug%20M%C3%A4rz.pdf"
            in response.headers["Content-Disposition"]
        )


def test_xhr_upload_answers_json(local_object_storage, tenant_client, tenant):
    response = post_upload(tenant_client, pdf_bytes(), HTTP_ACCEPT="application/json")
    assert response.status_code == 201
    assert response.json()["url"] == f"/documents/{only_document(tenant).pk}/"
    refused = post_upload(tenant_client, b"", HTTP_ACCEPT="application/json")
    assert refused.status_code == 400
    assert refused.json()["errors"]["file"][0]["message"] == "The file is empty."


def test_replace_keeps_earlier_versions_and_delete_is_soft(
    local_object_storage, tenant_client, tenant
):
    post_upload(tenant_client, pdf_bytes(), name="v1.pdf")
    document = only_document(tenant)
    response = tenant_client.post(
        f"/documents/{document.pk}/replace/", {"file": uploaded(pdf_bytes(), "v2.pdf")}
    )
    assert response.status_code == 302
    detail = tenant_client.get(f"/documents/{document.pk}/").content.decode()
    assert "v1.pdf" in detail and "v2.pdf" in detail
    assert len(local_files(local_object_storage)) == 2
    assert tenant_client.post(f"/documents/{document.pk}/delete/").status_code == 302
    assert f"/documents/{document.pk}/" not in tenant_client.get("/documents/").content.decode()
    assert tenant_client.get(f"/documents/{document.pk}/").status_code == 404
    assert len(local_files(local_object_storage)) == 2  # objects kept
    with db.tenant_context(tenant.pk):
        actions = set(DocumentAccess.objects.values_list("action", flat=True))
    assert actions == {AccessAction.UPLOAD, AccessAction.REPLACE, AccessAction.DELETE}


def test_validation_errors_are_shown_on_the_page(local_object_storage, tenant_client):
    response = post_upload(tenant_client, png_bytes(), name="statement.pdf")
    assert response.status_code == 400
    assert "A Bank statement must be a PDF; this file is a PNG." in response.content.decode()
    assert local_files(local_object_storage) == []


def test_upload_over_the_limit_is_stopped_while_reading(
    local_object_storage, settings, tenant_client
):
    settings.DOCUMENT_MAX_UPLOAD_BYTES = 1000
    response = post_upload(tenant_client, pdf_bytes(size=5000))
    assert response.status_code == 413
    assert "larger than the upload limit" in response.content.decode()
    assert local_files(local_object_storage) == []


def test_glacier_document_download_is_refused_with_a_clear_message(
    s3_bucket, tenant_client, tenant
):
    document = upload(tenant)
    with db.tenant_context(tenant.pk):
        Document.objects.filter(pk=document.pk).update(storage_class="GLACIER")
    response = tenant_client.get(f"/documents/{document.pk}/download/")
    assert response.status_code == 409
    assert "archived in Glacier" in response.content.decode()


def test_list_page_query_count_is_bounded(
    local_object_storage, tenant, tenant_client, django_assert_max_num_queries
):
    for _ in range(15):
        upload(tenant)
    with django_assert_max_num_queries(10):
        response = tenant_client.get("/documents/")
    assert response.content.count(b"/download/") == 15


# --- Local-file mode ----------------------------------------------------------------------------


def test_local_mode_download_goes_through_a_signed_expiring_link(
    local_object_storage, settings, tenant_client, tenant
):
    content = pdf_bytes()
    post_upload(tenant_client, content, name="état.pdf")
    document = only_document(tenant)
    redirect = tenant_client.get(f"/documents/{document.pk}/download/")
    assert redirect.url.startswith("/documents/file/")
    served = Client(HTTP_HOST=host_of(tenant)).get(redirect.url)  # the token is the permission
    assert served.status_code == 200
    assert b"".join(served.streaming_content) == content
    assert "filename*=utf-8''%C3%A9tat.pdf" in served["Content-Disposition"]
    tampered = redirect.url[:-3] + ("aaa" if not redirect.url.endswith("aaa/") else "bbb") + "/"
    assert tenant_client.get(tampered).status_code == 404
    settings.PRESIGNED_URL_EXPIRES = 1
    time.sleep(2.1)
    assert tenant_client.get(redirect.url).status_code == 404


# --- Another tenant's documents, by every route -------------------------------------------------


@pytest.fixture
def theirs(local_object_storage, other_tenant):
    return upload(other_tenant, pdf_bytes("GLOBEX-SECRET"), name="globex-secret.pdf")


def test_other_tenants_documents_are_not_listed(theirs, tenant_client):
    assert b"globex-secret" not in tenant_client.get("/documents/").content


@pytest.mark.parametrize("suffix", ["", "download/"])
def test_other_tenants_document_pages_are_404(theirs, tenant_client, suffix):
    assert tenant_client.get(f"/documents/{theirs.pk}/{suffix}").status_code == 404


def test_other_tenants_document_cannot_be_replaced_or_deleted(
    theirs, tenant_client, other_tenant, local_object_storage
):
    replace = tenant_client.post(
        f"/documents/{theirs.pk}/replace/", {"file": uploaded(pdf_bytes(), "x.pdf")}
    )
    assert replace.status_code == 404
    assert tenant_client.post(f"/documents/{theirs.pk}/delete/").status_code == 404
    theirs_now = only_document(other_tenant)
    assert theirs_now.deleted_at is None and theirs_now.original_filename == "globex-secret.pdf"
    assert len(local_files(local_object_storage)) == 1


def test_other_tenants_download_link_does_not_work_on_this_host(theirs, tenant):
    link = f"/documents/file/{downloads.local_download_token(theirs)}/"
    assert Client(HTTP_HOST=host_of(tenant)).get(link).status_code == 404


def test_forged_token_for_a_key_outside_the_tenant_prefix_is_refused(theirs, tenant):
    data = {"t": str(tenant.pk), "k": theirs.storage_key, "f": "x.pdf", "c": "application/pdf"}
    token = signing.dumps(data, salt="documents.local-download", compress=True)
    assert Client(HTTP_HOST=host_of(tenant)).get(f"/documents/file/{token}/").status_code == 404


def test_documents_pages_need_sign_in(tenant):
    response = Client(HTTP_HOST=host_of(tenant)).get("/documents/")
    assert response.status_code == 302 and response.url.startswith("/login/")


def test_large_page_upload_is_spooled_to_disk_and_sent_from_there(
    s3_bucket, s3_server, tenant_client, tenant
):
    from unittest import mock

    from documents import objects

    content = pdf_bytes(size=12 * 1024 * 1024)  # over FILE_UPLOAD_MAX_MEMORY_SIZE: a temp file
    with mock.patch.object(
        objects, "_s3_upload_from_disk", wraps=objects._s3_upload_from_disk
    ) as from_disk:
        assert post_upload(tenant_client, content).status_code == 302
    assert from_disk.call_count == 1
    document = only_document(tenant)
    head = s3_server.client().head_object(Bucket=s3_bucket, Key=document.storage_key)
    assert (head["ContentLength"], head["ContentType"]) == (len(content), "application/pdf")
    assert head["ServerSideEncryption"] == "AES256"


def test_body_announced_over_the_limit_is_refused_without_being_read(
    local_object_storage, settings, tenant_client
):
    settings.DOCUMENT_MAX_UPLOAD_BYTES = 100 * 1024  # the form overhead allowance is 64 KiB
    response = post_upload(
        tenant_client, pdf_bytes(size=200 * 1024), HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 413
    assert response.wsgi_request.upload_too_large
    assert response.json()["errors"]["file"][0]["message"] == (
        "The file is larger than the upload limit."
    )
    assert local_files(local_object_storage) == []
