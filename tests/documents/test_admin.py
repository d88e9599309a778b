"""Document admin: upload and replace through the services, download, storage summary, and
only the chosen tenant's documents."""

import urllib.request

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from documents import pagination
from documents.models import AccessAction, Document, DocumentAccess
from metis.objectstore import store
from tenants import db
from tests.documents.conftest import bucket_keys, pdf_bytes, png_bytes, upload, uploaded

DOCUMENTS = "/admin/documents/document/"
ACCESS_LOG = "/admin/documents/documentaccess/"


def choose(client, tenant) -> None:
    client.post("/admin/tenant-context/", {"tenant": str(tenant.pk)})


def test_admin_upload_goes_through_the_service(
    s3_bucket, s3_server, staff_client, staff_user, tenant
):
    choose(staff_client, tenant)
    content = pdf_bytes()
    response = staff_client.post(
        f"{DOCUMENTS}add/",
        {"document_type": "bank-statement", "file": uploaded(content, "adm.pdf")},
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    with db.tenant_context(tenant.pk):
        document = Document.objects.get()
        assert DocumentAccess.objects.get().staff_id == staff_user.pk
    assert document.uploaded_by_staff_id == staff_user.pk
    assert document.storage_key.startswith(f"tenants/{tenant.pk}/documents/bank-statements/")
    assert bucket_keys(s3_server, s3_bucket) == [document.storage_key]


def test_admin_upload_shows_validation_errors(s3_bucket, staff_client, tenant):
    choose(staff_client, tenant)
    response = staff_client.post(
        f"{DOCUMENTS}add/", {"document_type": "bank-statement", "file": uploaded(png_bytes())}
    )
    assert response.status_code == 200
    assert "A Bank statement must be a PDF; this file is a PNG." in response.content.decode()
    with db.tenant_context(tenant.pk):
        assert not Document.objects.exists()


def test_admin_replace_adds_a_version(s3_bucket, staff_client, tenant):
    document = upload(tenant, name="v1.pdf")
    choose(staff_client, tenant)
    response = staff_client.post(
        f"{DOCUMENTS}{document.pk}/change/", {"file": uploaded(pdf_bytes(), "v2.pdf")}
    )
    assert response.status_code == 302
    page = staff_client.get(f"{DOCUMENTS}{document.pk}/change/").content.decode()
    assert "v1.pdf" in page and "v2.pdf" in page
    with db.tenant_context(tenant.pk):
        assert document.versions.count() == 2


def test_admin_list_shows_tier_size_versions_and_storage_summary(s3_bucket, staff_client, tenant):
    document = upload(tenant, pdf_bytes(size=2950), name="listed.pdf")
    import io

    from documents import services

    with db.tenant_context(tenant.pk):
        services.document_replace(
            document=document, file=io.BytesIO(pdf_bytes(size=4900)), filename="listed.pdf"
        )
    upload(tenant, png_bytes(), document_type="image", name="photo.png")
    choose(staff_client, tenant)
    page = staff_client.get(DOCUMENTS).content.decode()
    assert "listed.pdf" in page and "photo.png" in page
    assert 'class="field-version_count">2<' in page
    assert 'id="storage-summary"' in page and "All stored versions" in page
    # Current versions: 4900 bytes + a tiny PNG; stored: both versions of listed.pdf too.
    assert "<td>STANDARD</td><td>2</td><td>4.9\xa0KB</td>" in page
    assert "<td>Acme Lending</td><td>3</td><td>7.8\xa0KB</td>" in page
    filtered = staff_client.get(f"{DOCUMENTS}?document_type__exact=image").content.decode()
    assert "photo.png" in filtered and "listed.pdf" not in filtered
    by_tier = staff_client.get(f"{DOCUMENTS}?storage_class__exact=GLACIER").content.decode()
    assert "photo.png" not in by_tier


def test_admin_list_query_count_is_bounded(
    s3_bucket, staff_client, tenant, django_assert_max_num_queries
):
    for _ in range(20):
        upload(tenant)
    choose(staff_client, tenant)
    with django_assert_max_num_queries(16):
        response = staff_client.get(DOCUMENTS)
    assert response.content.count(b"/download/") == 20


def test_admin_list_neither_counts_nor_sums_the_documents(
    s3_bucket, staff_client, tenant, monkeypatch
):
    """At a million documents an exact COUNT(*) or a SUM over them costs seconds: the page
    counts by the planner's estimate and reads the summary from the usage rows."""
    monkeypatch.setattr(pagination, "EXACT_COUNT_BELOW", 0)  # as for a large tenant
    for _ in range(3):
        upload(tenant)
    choose(staff_client, tenant)
    with CaptureQueriesContext(connection) as captured:
        response = staff_client.get(DOCUMENTS)
    assert (
        response.status_code == 200 and "<td>STANDARD</td><td>3</td>" in response.content.decode()
    )
    statements = [query["sql"].upper() for query in captured.captured_queries]
    over_documents = [sql for sql in statements if 'FROM "DOCUMENTS"' in sql]
    assert over_documents  # the page's rows
    assert not [sql for sql in over_documents if sql.startswith("SELECT COUNT(")]
    assert not [sql for sql in statements if "SUM(" in sql]
    assert any('FROM "DOCUMENT_USAGE"' in sql for sql in statements)


def test_admin_presigned_download_action_and_link(s3_bucket, staff_client, staff_user, tenant):
    content = pdf_bytes()
    document = upload(tenant, content, name="for-staff.pdf")
    choose(staff_client, tenant)
    response = staff_client.post(
        DOCUMENTS, {"action": "open_presigned_download", "_selected_action": [str(document.pk)]}
    )
    assert response.status_code == 302
    with urllib.request.urlopen(response.url) as served:
        assert served.read() == content
    link = staff_client.get(f"{DOCUMENTS}{document.pk}/download/")
    assert link.status_code == 302 and "X-Amz-Signature" in link.url
    with db.tenant_context(tenant.pk):
        accesses = DocumentAccess.objects.filter(action=AccessAction.DOWNLOAD)
        assert [a.staff_id for a in accesses] == [staff_user.pk, staff_user.pk]


def form_action(client, url: str) -> str:
    header = client.get(url).headers["Content-Security-Policy"]
    return dict(part.strip().split(" ", 1) for part in header.split(";"))["form-action"]


def test_only_the_document_list_lets_forms_lead_to_the_object_store(s3_bucket, staff_client):
    # Its download action answers the form with a redirect there, which form-action governs.
    origin = store.documents_store().presigned_origin()
    assert form_action(staff_client, DOCUMENTS) == f"'self' {origin}"
    assert form_action(staff_client, ACCESS_LOG) == form_action(staff_client, "/admin/") == "'self'"


def test_the_document_list_keeps_the_strict_form_action_without_a_store(staff_client, settings):
    settings.AWS_STORAGE_BUCKET_NAME = ""
    assert form_action(staff_client, DOCUMENTS) == "'self'"


def test_in_report_only_mode_the_document_list_reports_under_the_same_allowance(
    s3_bucket, staff_client, settings
):
    policy = settings.CONTENT_SECURITY_POLICY
    settings.CONTENT_SECURITY_POLICY, settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = None, policy
    response = staff_client.get(DOCUMENTS)
    assert "Content-Security-Policy" not in response.headers
    origin = store.documents_store().presigned_origin()
    assert f"form-action 'self' {origin}" in response.headers["Content-Security-Policy-Report-Only"]


def test_admin_soft_delete_action_keeps_the_object(s3_bucket, staff_client, tenant):
    document = upload(tenant)
    choose(staff_client, tenant)
    staff_client.post(DOCUMENTS, {"action": "soft_delete", "_selected_action": [str(document.pk)]})
    with db.tenant_context(tenant.pk):
        assert Document.objects.get().deleted_at is not None
    assert store.documents_store().exists(document.storage_key)


def test_access_log_admin_is_read_only(s3_bucket, staff_client, tenant):
    upload(tenant)
    choose(staff_client, tenant)
    assert "upload" in staff_client.get(ACCESS_LOG).content.decode().lower()
    access = DocumentAccess.objects.for_tenant(tenant)
    with db.tenant_context(tenant.pk):
        pk = access.get().pk
    assert staff_client.get(f"{ACCESS_LOG}add/").status_code == 403
    assert staff_client.post(f"{ACCESS_LOG}{pk}/delete/", {"post": "yes"}).status_code == 403


@pytest.fixture
def theirs(s3_bucket, other_tenant):
    return upload(other_tenant, name="globex-only.pdf")


def test_admin_under_tenant_a_cannot_see_or_download_bs_documents(theirs, staff_client, tenant):
    choose(staff_client, tenant)
    assert "globex-only.pdf" not in staff_client.get(DOCUMENTS).content.decode()
    assert staff_client.get(f"{DOCUMENTS}{theirs.pk}/download/").status_code == 404
    response = staff_client.post(
        DOCUMENTS, {"action": "open_presigned_download", "_selected_action": [str(theirs.pk)]}
    )
    assert response.status_code == 302 and theirs.storage_key not in response.url
    change = staff_client.post(f"{DOCUMENTS}{theirs.pk}/change/", {"file": uploaded(pdf_bytes())})
    assert change.status_code == 302 and change.url == "/admin/"  # "doesn't exist" redirect
    with db.tenant_context(theirs.tenant_id):
        assert theirs.versions.count() == 1


def test_admin_without_a_tenant_context_lists_no_documents(theirs, staff_client):
    assert "globex-only.pdf" not in staff_client.get(DOCUMENTS).content.decode()
    assert staff_client.get(f"{DOCUMENTS}add/").status_code == 403


def test_admin_upload_keeps_the_subject_ref(s3_bucket, staff_client, tenant):
    choose(staff_client, tenant)
    response = staff_client.post(
        f"{DOCUMENTS}add/",
        {
            "document_type": "bank-statement",
            "file": uploaded(pdf_bytes(), "adm.pdf"),
            "subject_ref": "CUST-42",
        },
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    with db.tenant_context(tenant.pk):
        assert Document.objects.get().metadata == {"subject_ref": "CUST-42"}
