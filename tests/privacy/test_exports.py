"""Exports against the real S3 server, ClickHouse engine (chdb) and PostgreSQL with RLS on.

What issue 13 asks to see: the ZIP's files are byte-identical to the stored objects, its JSON has
the subject's rows and no other subject's (same tenant) or tenant's, the link stops working after
it expires, the deletion job removes every version, and nobody reaches another's export.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from documents import services as document_services
from documents.models import Document
from privacy.exports import services, tasks
from privacy.exports.models import Export, ExportScope, ExportStatus
from tenants import db
from tests.analytics.conftest import insert_events, now
from tests.conftest import host_of
from tests.documents.conftest import pdf_bytes, upload
from tests.factories import TEST_PASSWORD, TenantUserFactory

pytestmark = pytest.mark.usefixtures("s3_bucket", "clickhouse_db")


def client_for(user) -> Client:
    client = Client(HTTP_HOST=host_of(user.tenant))
    response = client.post("/login/", {"email": user.email, "password": TEST_PASSWORD})
    assert response.status_code == 302, response.content
    return client


def replace(document, content: bytes, user) -> Document:
    with db.tenant_context(document.tenant_id):
        return document_services.document_replace(
            document=document, file=io.BytesIO(content), filename="again.pdf", user=user
        )


def tag(document, subject_ref: str) -> None:
    with db.tenant_context(document.tenant_id):
        Document.objects.filter(pk=document.pk).update(metadata={"subject_ref": subject_ref})


def request_and_build(requested_by, **kwargs) -> Export:
    """Request as the page does, then run the build task's body as the worker would."""
    with db.tenant_context(requested_by.tenant_id):
        export = services.export_request(requested_by=requested_by, **kwargs)
    result = tasks.export_build.apply(
        kwargs={"export_id": str(export.pk), "tenant_id": str(requested_by.tenant_id)}
    )
    assert result.get() == ExportStatus.READY
    with db.tenant_context(requested_by.tenant_id):
        return Export.objects.get(pk=export.pk)


def zip_of(export: Export, s3_server, bucket: str) -> zipfile.ZipFile:
    body = (
        s3_server.client()
        .get_object(Bucket=bucket, Key=export.object_key, VersionId=export.version_id)["Body"]
        .read()
    )
    assert hashlib.sha256(body).hexdigest() == export.sha256
    return zipfile.ZipFile(io.BytesIO(body))


def table(archive_zip: zipfile.ZipFile, name: str) -> list[dict]:
    return json.loads(archive_zip.read(f"json/{name}.json"))


@pytest.fixture
def people(tenant, other_tenant, tenant_user, other_tenant_user):
    """Alice and Bob at Acme, Gina at Globex; each with documents and events. Alice also
    uploaded borrower CUST-1's document (three versions): CUST-1's data, not hers."""
    bob = TenantUserFactory(tenant=tenant, email="bob@acme.example", name="Bob Acme")
    alice_doc = upload(tenant, pdf_bytes("alice v1"), name="alice.pdf", user=tenant_user)
    replace(alice_doc, pdf_bytes("alice v2"), tenant_user)
    replace(alice_doc, pdf_bytes("alice v3"), tenant_user)
    cust1_doc = upload(tenant, pdf_bytes("cust-1 v1"), name="cust1.pdf", user=tenant_user)
    replace(cust1_doc, pdf_bytes("cust-1 v2"), tenant_user)
    replace(cust1_doc, pdf_bytes("cust-1 v3"), tenant_user)
    bob_doc = upload(tenant, pdf_bytes("bob"), name="bob.pdf", user=bob)
    gina_doc = upload(other_tenant, pdf_bytes("gina"), name="gina.pdf", user=other_tenant_user)
    tag(cust1_doc, "CUST-1")
    tag(bob_doc, "CUST-2")
    tag(gina_doc, "CUST-1")  # the same reference in another tenant is another borrower
    at = now()
    insert_events(
        [
            (
                tenant.pk,
                "document.downloaded",
                json.dumps({"document_id": str(cust1_doc.pk)}),
                tenant_user.pk,
                at,
            ),
            (tenant.pk, "user.signed_in", "{}", tenant_user.pk, at + timedelta(milliseconds=1)),
            (
                tenant.pk,
                "document.downloaded",
                json.dumps({"document_id": str(bob_doc.pk)}),
                bob.pk,
                at,
            ),
            (
                other_tenant.pk,
                "document.downloaded",
                json.dumps({"document_id": str(gina_doc.pk)}),
                other_tenant_user.pk,
                at,
            ),
        ]
    )
    return {
        "alice": tenant_user,
        "bob": bob,
        "gina": other_tenant_user,
        "alice_doc": alice_doc,
        "cust1_doc": cust1_doc,
        "bob_doc": bob_doc,
        "gina_doc": gina_doc,
    }


def test_export_files_are_byte_identical_to_the_stored_objects(people, s3_server, s3_bucket):
    export = request_and_build(people["alice"], scope=ExportScope.USER)
    archive_zip = zip_of(export, s3_server, s3_bucket)
    versions = table(archive_zip, "document_versions")
    assert sorted(v["number"] for v in versions) == [1, 2, 3]
    manifest = json.loads(archive_zip.read("manifest.json"))
    assert len(manifest["files"]) == 3 and manifest["skipped"] == []
    with db.tenant_context(people["alice"].tenant_id):
        stored = {
            (v.document_id, v.number): (v.storage_key, v.version_id)
            for v in people["alice_doc"].versions.all()
        }
    for entry in manifest["files"]:
        key, version_id = stored[(uuid.UUID(entry["document_id"]), entry["version"])]
        original = (
            s3_server.client()
            .get_object(Bucket=s3_bucket, Key=key, VersionId=version_id)["Body"]
            .read()
        )
        copied = archive_zip.read(entry["path"])
        assert hashlib.sha256(copied).digest() == hashlib.sha256(original).digest()
        assert entry["sha256"] == hashlib.sha256(original).hexdigest()
        assert entry["matches_recorded_sha256"] is True
    assert export.summary["files"] == 3
    assert export.object_key == f"tenants/{export.tenant_id}/exports/{export.pk}.zip"


def _every_byte(archive_zip: zipfile.ZipFile) -> bytes:
    return b"".join(archive_zip.read(name) for name in archive_zip.namelist())


def test_user_export_has_their_rows_and_no_other_subjects(people, s3_server, s3_bucket):
    alice, bob, gina = people["alice"], people["bob"], people["gina"]
    export = request_and_build(alice, scope=ExportScope.USER)
    archive_zip = zip_of(export, s3_server, s3_bucket)
    assert [u["id"] for u in table(archive_zip, "users")] == [str(alice.pk)]
    assert "password" not in archive_zip.read("json/users.json").decode()
    # Her own document; not the borrower's she uploaded (its access rows, her acts, are hers).
    assert [d["id"] for d in table(archive_zip, "documents")] == [str(people["alice_doc"].pk)]
    assert not [n for n in archive_zip.namelist() if n.endswith("cust1.pdf")]
    access = table(archive_zip, "access_log")
    assert len(access) == 6 and {a["user_id"] for a in access} == {str(alice.pk)}
    events = table(archive_zip, "events")
    assert sorted(e["event_type"] for e in events) == ["document.downloaded", "user.signed_in"]
    assert {e["user_id"] for e in events} == {str(alice.pk)}
    csv_users = archive_zip.read("csv/users.csv").decode().splitlines()
    assert len(csv_users) == 2 and alice.email in csv_users[1]
    everything = _every_byte(archive_zip)
    for foreign in (
        bob.pk,
        bob.email,
        gina.pk,
        gina.email,
        people["bob_doc"].pk,
        people["gina_doc"].pk,
        b"bob.pdf",
        b"gina.pdf",
    ):
        marker = foreign if isinstance(foreign, bytes) else str(foreign).encode()
        assert marker not in everything, marker


def test_borrower_export_has_their_documents_and_events_only(people, s3_server, s3_bucket):
    alice = people["alice"]
    alice.is_admin = True
    with db.tenant_context(alice.tenant_id):
        alice.save(update_fields=["is_admin"])
    export = request_and_build(alice, scope=ExportScope.BORROWER, subject_ref="CUST-1")
    archive_zip = zip_of(export, s3_server, s3_bucket)
    assert table(archive_zip, "users") == []
    assert [d["id"] for d in table(archive_zip, "documents")] == [str(people["cust1_doc"].pk)]
    events = table(archive_zip, "events")
    assert [e["event_data"]["document_id"] for e in events] == [str(people["cust1_doc"].pk)]
    assert str(people["alice_doc"].pk).encode() not in _every_byte(archive_zip)
    everything = _every_byte(archive_zip)
    assert str(people["bob_doc"].pk).encode() not in everything
    assert str(people["gina_doc"].pk).encode() not in everything  # CUST-1 at Globex
    assert len([n for n in archive_zip.namelist() if n.startswith("files/")]) == 3


def test_whole_tenant_export_holds_every_user_and_no_other_tenant(people, s3_server, s3_bucket):
    alice = people["alice"]
    alice.is_admin = True
    with db.tenant_context(alice.tenant_id):
        alice.save(update_fields=["is_admin"])
    export = request_and_build(alice, scope=ExportScope.TENANT)
    archive_zip = zip_of(export, s3_server, s3_bucket)
    assert {u["email"] for u in table(archive_zip, "users")} == {alice.email, people["bob"].email}
    assert len(table(archive_zip, "events")) == 3
    assert str(people["gina_doc"].pk).encode() not in _every_byte(archive_zip)


def test_link_works_then_stops_after_it_expires(people, settings, s3_bucket):
    export = request_and_build(people["alice"], scope=ExportScope.USER)
    settings.EXPORT_LINK_SECONDS = 3
    client = client_for(people["alice"])
    redirect = client.get(f"/exports/{export.pk}/download/")
    assert redirect.status_code == 302 and "X-Amz-Signature=" in redirect.url
    assert f"/exports/{export.pk}.zip" in redirect.url
    with urllib.request.urlopen(redirect.url) as served:
        assert hashlib.sha256(served.read()).hexdigest() == export.sha256
    time.sleep(4.1)
    with pytest.raises(urllib.error.HTTPError) as expired:
        urllib.request.urlopen(redirect.url)
    assert expired.value.code == 403


def test_deletion_job_removes_every_version_and_the_row_remembers(people, s3_server, s3_bucket):
    s3 = s3_server.client()
    s3.put_bucket_versioning(Bucket=s3_bucket, VersioningConfiguration={"Status": "Enabled"})
    export = request_and_build(people["alice"], scope=ExportScope.USER)
    # A rebuild or a stray write leaves a second version under the same key: both must go.
    s3.put_object(Bucket=s3_bucket, Key=export.object_key, Body=b"second version")
    assert len(s3.list_object_versions(Bucket=s3_bucket, Prefix=export.object_key)["Versions"]) == 2
    assert tasks.exports_delete_expired.apply().get() == 0  # not due yet
    with db.tenant_context(export.tenant_id):
        Export.objects.filter(pk=export.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert tasks.exports_delete_expired.apply().get() == 1
    listing = s3.list_object_versions(Bucket=s3_bucket, Prefix=export.object_key)
    assert listing.get("Versions", []) == [] and listing.get("DeleteMarkers", []) == []
    with db.tenant_context(export.tenant_id):
        export.refresh_from_db()
    assert export.status == ExportStatus.EXPIRED and export.deleted_at is not None
    assert export.summary["rows"]["document_versions"] == 3 and export.sha256
    response = client_for(people["alice"]).get(f"/exports/{export.pk}/download/")
    assert response.status_code == 410
    assert b"The file was deleted" in response.content


def test_nobody_reaches_another_users_or_tenants_export(people, other_tenant):
    alice, bob, gina = people["alice"], people["bob"], people["gina"]
    export = request_and_build(alice, scope=ExportScope.USER)
    for outsider in (bob, gina):
        client = client_for(outsider)
        for path in (f"/exports/{export.pk}/", f"/exports/{export.pk}/download/"):
            assert client.get(path).status_code == 404, (outsider, path)
        assert str(export.pk) not in client.get("/exports/").content.decode()
    # A tenant admin of Globex is still an outsider; one of Acme sees every Acme export.
    gina.is_admin = True
    with db.tenant_context(other_tenant.pk):
        gina.save(update_fields=["is_admin"])
    assert client_for(gina).get(f"/exports/{export.pk}/download/").status_code == 404
    bob.is_admin = True
    with db.tenant_context(bob.tenant_id):
        bob.save(update_fields=["is_admin"])
    assert client_for(bob).get(f"/exports/{export.pk}/download/").status_code == 302


def test_only_tenant_admins_export_another_subject(people):
    alice, bob = people["alice"], people["bob"]
    client = client_for(bob)
    response = client.post("/exports/subject/", {"scope": "user", "email": alice.email})
    assert response.status_code == 403
    with db.tenant_context(bob.tenant_id):
        assert not Export.objects.exists()
        with pytest.raises(services.ExportRefused):
            services.export_request(requested_by=bob, scope=ExportScope.USER, subject_user=alice)
        with pytest.raises(services.ExportRefused):
            services.export_request(requested_by=bob, scope=ExportScope.TENANT)


def test_admin_cannot_name_another_tenants_user(people):
    alice = people["alice"]
    alice.is_admin = True
    with db.tenant_context(alice.tenant_id):
        alice.save(update_fields=["is_admin"])
    response = client_for(alice).post(
        "/exports/subject/", {"scope": "user", "email": people["gina"].email}
    )
    assert response.status_code == 400
    assert b"No user of this tenant has this email" in response.content


def test_build_task_for_another_tenant_finds_no_export(people, other_tenant):
    with db.tenant_context(people["alice"].tenant_id):
        export = services.export_request(requested_by=people["alice"], scope=ExportScope.USER)
    with pytest.raises(Export.DoesNotExist):
        tasks.export_build.apply(
            kwargs={"export_id": str(export.pk), "tenant_id": str(other_tenant.pk)}
        ).get()


def test_export_rows_are_invisible_to_another_tenant(people, other_tenant):
    export = request_and_build(people["alice"], scope=ExportScope.USER)
    with db.tenant_context(other_tenant.pk):
        assert not Export.objects.filter(pk=export.pk).exists()
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM privacy_exports")
            assert cursor.fetchone()[0] == 0
    with db.tenant_context(export.tenant_id):
        assert Export.objects.filter(pk=export.pk).exists()


def test_download_my_data_page_requests_an_export(people, django_capture_on_commit_callbacks):
    client = client_for(people["bob"])
    page = client.get("/exports/")
    assert page.status_code == 200 and b"Download my data" in page.content
    assert b"Export a subject" not in page.content  # not a tenant admin
    with django_capture_on_commit_callbacks() as sent:
        response = client.post("/exports/mine/")
    assert response.status_code == 302 and len(sent) == 1
    with db.tenant_context(people["bob"].tenant_id):
        export = Export.objects.get()
    assert export.subject_user_id == people["bob"].pk and export.status == ExportStatus.QUEUED
    assert client.get(response.url).status_code == 200
