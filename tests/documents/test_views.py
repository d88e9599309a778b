"""Tenant pages: list, upload, download, replace, delete; and never another tenant's document."""

import time
import urllib.error
import urllib.request

import pytest
from django.test import Client

from documents.models import AccessAction, Document, DocumentAccess
from tenants import db
from tests.conftest import host_of
from tests.documents.conftest import pdf_bytes, png_bytes, stored_keys, upload, uploaded


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


def test_xhr_upload_answers_json(s3_bucket, tenant_client, tenant):
    response = post_upload(tenant_client, pdf_bytes(), HTTP_ACCEPT="application/json")
    assert response.status_code == 201
    assert response.json()["url"] == f"/documents/{only_document(tenant).pk}/"
    refused = post_upload(tenant_client, b"", HTTP_ACCEPT="application/json")
    assert refused.status_code == 400
    assert refused.json()["errors"]["file"][0]["message"] == "The file is empty."


def test_replace_keeps_earlier_versions_and_delete_is_soft(s3_bucket, tenant_client, tenant):
    post_upload(tenant_client, pdf_bytes(), name="v1.pdf")
    document = only_document(tenant)
    response = tenant_client.post(
        f"/documents/{document.pk}/replace/", {"file": uploaded(pdf_bytes(), "v2.pdf")}
    )
    assert response.status_code == 302
    detail = tenant_client.get(f"/documents/{document.pk}/").content.decode()
    assert "v1.pdf" in detail and "v2.pdf" in detail
    assert len(stored_keys()) == 2
    assert tenant_client.post(f"/documents/{document.pk}/delete/").status_code == 302
    assert f"/documents/{document.pk}/" not in tenant_client.get("/documents/").content.decode()
    assert tenant_client.get(f"/documents/{document.pk}/").status_code == 404
    assert len(stored_keys()) == 2  # objects kept
    with db.tenant_context(tenant.pk):
        actions = set(DocumentAccess.objects.values_list("action", flat=True))
    assert actions == {AccessAction.UPLOAD, AccessAction.REPLACE, AccessAction.DELETE}


def test_validation_errors_are_shown_on_the_page(s3_bucket, tenant_client):
    response = post_upload(tenant_client, png_bytes(), name="statement.pdf")
    assert response.status_code == 400
    assert "A Bank statement must be a PDF; this file is a PNG." in response.content.decode()
    assert stored_keys() == []


def test_upload_over_the_limit_is_stopped_while_reading(s3_bucket, settings, tenant_client):
    settings.DOCUMENT_MAX_UPLOAD_BYTES = 1000
    response = post_upload(tenant_client, pdf_bytes(size=5000))
    assert response.status_code == 413
    assert "larger than the upload limit" in response.content.decode()
    assert stored_keys() == []


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
    s3_bucket, tenant, tenant_client, django_assert_max_num_queries
):
    for _ in range(15):
        upload(tenant)
    with django_assert_max_num_queries(10):
        response = tenant_client.get("/documents/")
    assert response.content.count(b"/download/") == 15


# --- Downloads: presigned URLs to the S3 server ------------------------------------------------


def test_download_redirects_to_a_presigned_url_that_expires(
    s3_bucket, s3_server, settings, tenant_client, tenant
):
    content = pdf_bytes()
    post_upload(tenant_client, content, name="état.pdf")
    document = only_document(tenant)
    redirect = tenant_client.get(f"/documents/{document.pk}/download/")
    assert redirect.url.startswith(f"{s3_server.endpoint_url}/{s3_bucket}/{document.storage_key}?")
    assert "X-Amz-Signature=" in redirect.url
    with urllib.request.urlopen(redirect.url) as served:  # the signature is the permission
        assert served.read() == content
        assert "filename*=UTF-8''%C3%A9tat.pdf" in served.headers["Content-Disposition"]
    tampered = redirect.url.replace(document.storage_key, document.storage_key[:-4] + "x.pdf")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(tampered)
    assert refused.value.code == 403
    settings.PRESIGNED_URL_EXPIRES = 1
    short = tenant_client.get(f"/documents/{document.pk}/download/").url
    time.sleep(2.1)
    with pytest.raises(urllib.error.HTTPError) as expired:
        urllib.request.urlopen(short)
    assert expired.value.code == 403


# --- Another tenant's documents, by every route -------------------------------------------------


@pytest.fixture
def theirs(s3_bucket, other_tenant):
    return upload(other_tenant, pdf_bytes("GLOBEX-SECRET"), name="globex-secret.pdf")


def test_other_tenants_documents_are_not_listed(theirs, tenant_client):
    assert b"globex-secret" not in tenant_client.get("/documents/").content


@pytest.mark.parametrize("suffix", ["", "download/"])
def test_other_tenants_document_pages_are_404(theirs, tenant_client, suffix):
    assert tenant_client.get(f"/documents/{theirs.pk}/{suffix}").status_code == 404


def test_other_tenants_document_cannot_be_replaced_or_deleted(
    theirs, tenant_client, other_tenant, s3_bucket
):
    replace = tenant_client.post(
        f"/documents/{theirs.pk}/replace/", {"file": uploaded(pdf_bytes(), "x.pdf")}
    )
    assert replace.status_code == 404
    assert tenant_client.post(f"/documents/{theirs.pk}/delete/").status_code == 404
    theirs_now = only_document(other_tenant)
    assert theirs_now.deleted_at is None and theirs_now.original_filename == "globex-secret.pdf"
    assert len(stored_keys()) == 1


def test_documents_pages_need_sign_in(tenant):
    response = Client(HTTP_HOST=host_of(tenant)).get("/documents/")
    assert response.status_code == 302 and response.url.startswith("/login/")


def test_large_page_upload_is_spooled_to_disk_and_sent_from_there(
    s3_bucket, s3_server, tenant_client, tenant, monkeypatch
):
    from metis.objectstore.store import ObjectStore

    content = pdf_bytes(size=12 * 1024 * 1024)  # over FILE_UPLOAD_MAX_MEMORY_SIZE: a temp file
    sent_paths = []
    put_file_stored = ObjectStore.put_file_stored

    def recording_put_file_stored(self, **kwargs):
        sent_paths.append(kwargs["path"])
        return put_file_stored(self, **kwargs)

    monkeypatch.setattr(ObjectStore, "put_file_stored", recording_put_file_stored)
    assert post_upload(tenant_client, content).status_code == 302
    assert len(sent_paths) == 1
    document = only_document(tenant)
    head = s3_server.client().head_object(Bucket=s3_bucket, Key=document.storage_key)
    assert (head["ContentLength"], head["ContentType"]) == (len(content), "application/pdf")
    assert head["ServerSideEncryption"] == "AES256"


def test_body_announced_over_the_limit_is_refused_without_being_read(
    s3_bucket, settings, tenant_client
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
    assert stored_keys() == []
