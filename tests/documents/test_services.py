"""Document services against real storage: key layout, versions, soft delete, download URLs."""

import io
import urllib.parse
import urllib.request

import pytest

from documents import services
from documents.models import AccessAction, Document, DocumentAccess, RestoreStatus, StorageClass
from tenants import db
from tests.documents.conftest import bucket_keys, pdf_bytes, png_bytes, stored_keys, upload


def test_upload_stores_encrypted_object_under_the_spec_key_layout(s3_bucket, s3_server, tenant):
    content = pdf_bytes("kyc")
    document = upload(tenant, content, name="../../etc/Bank Statement.pdf")
    prefix = f"tenants/{tenant.pk}/documents/bank-statements/{document.pk}/"
    assert document.storage_key.startswith(prefix) and document.storage_key.endswith(".pdf")
    assert "Bank" not in document.storage_key and ".." not in document.storage_key
    assert document.original_filename == "Bank Statement.pdf"
    head = s3_server.client().head_object(Bucket=s3_bucket, Key=document.storage_key)
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ContentLength"] == len(content) == document.size_bytes
    assert document.content_type == "application/pdf"
    with db.tenant_context(tenant.pk):
        version = document.versions.get()
        assert (version.number, version.storage_key) == (1, document.storage_key)
        assert DocumentAccess.objects.get(document=document).action == AccessAction.UPLOAD


def test_images_and_reports_get_their_own_folders(s3_bucket, tenant):
    image = upload(tenant, png_bytes(), document_type="image", name="selfie.png")
    report = upload(tenant, document_type="report", name="r.pdf")
    aadhar = upload(tenant, png_bytes(), document_type="aadhar", name="a.png")
    assert image.storage_key.startswith(f"tenants/{tenant.pk}/images/{image.pk}/")
    assert image.storage_key.endswith(".png")
    assert report.storage_key.startswith(f"tenants/{tenant.pk}/reports/")
    assert aadhar.storage_key.startswith(f"tenants/{tenant.pk}/documents/aadhar/")
    assert len(stored_keys()) == 3


def test_replace_adds_a_version_and_keeps_the_earlier_object(s3_bucket, s3_server, tenant):
    first = upload(tenant, name="v1.pdf")
    old_key = first.storage_key
    with db.tenant_context(tenant.pk):
        second = services.document_replace(
            document=first, file=__import__("io").BytesIO(pdf_bytes()), filename="v2.pdf"
        )
    assert second.pk == first.pk and second.storage_key != old_key
    assert second.original_filename == "v2.pdf"
    with db.tenant_context(tenant.pk):
        assert list(second.versions.values_list("number", flat=True)) == [2, 1]
    assert set(bucket_keys(s3_server, s3_bucket)) == {old_key, second.storage_key}


def test_upload_and_replace_record_the_objects_etag(s3_bucket, s3_server, tenant):
    client = s3_server.client()
    first = upload(tenant, name="v1.pdf")
    head = client.head_object(Bucket=s3_bucket, Key=first.storage_key)
    assert first.etag == head["ETag"] and first.etag.startswith('"')
    with db.tenant_context(tenant.pk):
        second = services.document_replace(
            document=first, file=__import__("io").BytesIO(pdf_bytes()), filename="v2.pdf"
        )
        second.refresh_from_db()
    head = client.head_object(Bucket=s3_bucket, Key=second.storage_key)
    assert second.etag == head["ETag"] != first.etag


def test_delete_is_soft_and_keeps_objects(s3_bucket, tenant):
    document = upload(tenant)
    with db.tenant_context(tenant.pk):
        services.document_delete(document=document)
    with db.tenant_context(tenant.pk):
        document.refresh_from_db()
        assert document.deleted_at is not None
        assert not Document.objects.for_tenant(tenant).live().exists()
        assert DocumentAccess.objects.filter(action=AccessAction.DELETE).count() == 1
    assert stored_keys() == [document.storage_key]
    with db.tenant_context(tenant.pk), pytest.raises(services.DocumentNotDownloadable):
        services.document_download_url(document=document)


def test_presigned_download_carries_the_original_filename_and_expires(
    s3_bucket, settings, tenant, tenant_user
):
    settings.PRESIGNED_URL_EXPIRES = 300
    content = pdf_bytes()
    document = upload(tenant, content, name='Relevé "août" ₹.pdf')
    with db.tenant_context(tenant.pk):
        url = services.document_download_url(document=document, user=tenant_user)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query["X-Amz-Expires"] == ["300"]
    with urllib.request.urlopen(url) as response:
        assert response.read() == content
        disposition = response.headers["Content-Disposition"]
        assert response.headers["Content-Type"] == "application/pdf"
    assert "filename*=UTF-8''Relev%C3%A9%20%22ao%C3%BBt%22%20%E2%82%B9.pdf" in disposition
    assert 'filename="Relev_ _ao_t_ _.pdf"' in disposition
    with db.tenant_context(tenant.pk):
        access = DocumentAccess.objects.get(action=AccessAction.DOWNLOAD)
        assert (access.user, access.document_id) == (tenant_user, document.pk)
        assert Document.objects.get(pk=document.pk).last_accessed_at is not None


def test_glacier_document_is_refused_until_restored(s3_bucket, tenant):
    document = upload(tenant)
    with db.tenant_context(tenant.pk):
        Document.objects.filter(pk=document.pk).update(storage_class=StorageClass.GLACIER)
        document.refresh_from_db()
    assert not services.document_is_downloadable(document)
    with (
        db.tenant_context(tenant.pk),
        pytest.raises(services.DocumentNotDownloadable, match="archived in Glacier"),
    ):
        services.document_download_url(document=document)
    document.restore_status = RestoreStatus.REQUESTED
    with (
        db.tenant_context(tenant.pk),
        pytest.raises(services.DocumentNotDownloadable, match="not ready yet"),
    ):
        services.document_download_url(document=document)
    document.restore_status = RestoreStatus.READY
    assert services.document_is_downloadable(document)
    with db.tenant_context(tenant.pk):
        assert services.document_download_url(document=document).startswith("http")
    with db.tenant_context(tenant.pk):
        assert DocumentAccess.objects.filter(action=AccessAction.DOWNLOAD).count() == 1


def test_a_presigned_url_cannot_be_turned_to_another_tenants_key(s3_bucket, tenant, other_tenant):
    import urllib.error

    mine = upload(tenant)
    theirs = upload(other_tenant)
    with db.tenant_context(tenant.pk):
        url = services.document_download_url(document=mine)
    forged = url.replace(mine.storage_key, theirs.storage_key)
    assert forged != url
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(forged)
    assert error.value.code == 403


def test_services_require_the_documents_tenant_context_and_open_none(
    s3_bucket, tenant, other_tenant
):
    document = upload(tenant)

    def upload_for_tenant():
        return services.document_upload(
            tenant=tenant,
            document_type="bank-statement",
            file=io.BytesIO(pdf_bytes()),
            filename="x.pdf",
        )

    with pytest.raises(db.TenantContextError, match="no tenant context"):
        services.document_delete(document=document)
    with pytest.raises(db.TenantContextError, match="no tenant context"):
        upload_for_tenant()
    with db.tenant_context(other_tenant.pk):
        with pytest.raises(db.TenantContextError, match="is for tenant"):
            services.document_download_url(document=document)
        with pytest.raises(db.TenantContextError, match="is for tenant"):
            upload_for_tenant()
    with db.tenant_context(tenant.pk):
        assert Document.objects.for_tenant(tenant).live().count() == 1
        assert not DocumentAccess.objects.filter(action=AccessAction.DOWNLOAD).exists()


def test_one_upload_opens_no_tenant_context_of_its_own(s3_bucket, tenant, monkeypatch):
    opened = []
    real = db.tenant_context

    def counting(tenant_id, **kwargs):
        opened.append(tenant_id)
        return real(tenant_id, **kwargs)

    with real(tenant.pk):
        monkeypatch.setattr(db, "tenant_context", counting)
        services.document_upload(
            tenant=tenant,
            document_type="bank-statement",
            file=io.BytesIO(pdf_bytes()),
            filename="x.pdf",
        )
    assert opened == []
