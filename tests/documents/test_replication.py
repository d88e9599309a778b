"""Every stored version reaches the DR bucket (a second SeaweedFS server) with the same bytes and
encryption; with the primary server stopped, a tenant user downloads from the DR copy."""

from __future__ import annotations

import io
import urllib.request
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from documents import replication, services, tasks, tiering
from documents.models import Document, DocumentVersion, StorageClass
from metis.celery import app
from metis.objectstore import store
from tenants import db
from tests.documents.conftest import pdf_bytes, upload, uploaded
from tests.documents.dr import (
    dr_bucket,
    dr_bytes,
    dr_server,
    dr_versions,
    own_primary,
    sha256,
    versioned_primary,
    versions_of,
)

__all__ = ["dr_bucket", "dr_server", "own_primary", "versioned_primary"]

BANNER = "Primary storage is unavailable; downloads come from the disaster-recovery copy"


@pytest.fixture
def eager():
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


def _replace(document, content: bytes):
    with db.tenant_context(document.tenant_id):
        return services.document_replace(
            document=document, file=io.BytesIO(content), filename="statement.pdf"
        )


def _assert_in_dr(dr_server, dr_bucket, version: DocumentVersion) -> None:
    """The row says copied, and the DR server holds that copy: same bytes, same encryption,
    same ETag and content type as the primary's version."""
    assert version.is_replicated(), version
    primary = store.documents_store()
    source = primary.head(version.storage_key, version_id=version.version_id)
    copy = dr_server.client().head_object(
        Bucket=dr_bucket, Key=version.storage_key, VersionId=version.dr_version_id
    )
    assert copy["ServerSideEncryption"] == source["ServerSideEncryption"] == "AES256"
    if "-" not in source["ETag"]:  # a multipart upload's ETag is not its MD5; the copy's is
        assert copy["ETag"] == source["ETag"]
    assert copy["ContentType"] == source["ContentType"]
    assert copy.get("StorageClass", "STANDARD") == source.get("StorageClass", "STANDARD")
    data = dr_bytes(dr_server, dr_bucket, version.storage_key, version.dr_version_id)
    assert (
        sha256(data)
        == version.sha256
        == sha256(primary.read_version(version.storage_key, version.version_id))
    )


def test_upload_replace_and_tiering_each_copy_their_version_to_the_dr_bucket(
    versioned_primary, dr_server, dr_bucket, tenant, eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        document = upload(tenant)
    [first] = versions_of(document)
    _assert_in_dr(dr_server, dr_bucket, first)

    with django_capture_on_commit_callbacks(execute=True):
        _replace(document, pdf_bytes(b"second"))
    first, second = versions_of(document)
    _assert_in_dr(dr_server, dr_bucket, first)
    _assert_in_dr(dr_server, dr_bucket, second)

    # Tiering rewrites the current version in place (a new version id): copied again.
    with db.tenant_context(tenant.pk):
        Document.objects.filter(pk=document.pk).update(
            created_at=timezone.now() - timedelta(40), stored_at=timezone.now() - timedelta(40)
        )
        DocumentVersion.objects.filter(document_id=document.pk).update(
            created_at=timezone.now() - timedelta(40)
        )
    before = second.version_id
    with (
        django_capture_on_commit_callbacks(execute=True),
        db.tenant_context(tenant.pk, atomic=False),
    ):
        report = tiering.documents_tier_due(tenant_id=tenant.pk, limit=10)
    assert report.moved_to[StorageClass.STANDARD_IA] == 1
    first, second = versions_of(document)
    assert second.version_id != before
    _assert_in_dr(dr_server, dr_bucket, second)
    assert second.dr_source_version_id == second.version_id
    _assert_in_dr(dr_server, dr_bucket, first)
    assert len(dr_versions(dr_server, dr_bucket, second.storage_key)) == 2  # before and after


def test_a_browser_multipart_upload_is_copied_whole(
    versioned_primary,
    dr_server,
    dr_bucket,
    tenant,
    tenant_client,
    eager,
    django_capture_on_commit_callbacks,
):
    from tests.documents.test_multipart import MiB, post_json, send_parts, start

    content = pdf_bytes(size=9 * MiB)  # two parts; spooled to disk on its way to the DR
    status, started = start(tenant_client, content)
    assert status == 201, started
    parts = send_parts(started, content)
    with django_capture_on_commit_callbacks(execute=True):
        status, done = post_json(
            tenant_client,
            "/documents/multipart/complete/",
            {"ticket": started["ticket"], "parts": parts},
        )
    assert status == 201, done
    with db.tenant_context(tenant.pk):
        document = Document.objects.get(pk=done["id"])
    [version] = versions_of(document)
    _assert_in_dr(dr_server, dr_bucket, version)
    assert sha256(content) == version.sha256


def test_a_staff_tier_change_copies_the_new_version(
    versioned_primary, dr_server, dr_bucket, tenant, eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        document = upload(tenant)
    with django_capture_on_commit_callbacks(execute=True), db.tenant_context(tenant.pk):
        tiering.document_tier_change(document=document, storage_class=StorageClass.GLACIER)
    [version] = versions_of(document)
    _assert_in_dr(dr_server, dr_bucket, version)
    with db.tenant_context(tenant.pk):
        assert version.version_id == Document.objects.get(pk=document.pk).version_id


def test_replicating_twice_copies_once(versioned_primary, dr_server, dr_bucket, tenant):
    document = upload(tenant)
    [version] = versions_of(document)
    with db.tenant_context(tenant.pk, atomic=False):
        assert replication.version_replicate(version_id=version.pk) == replication.COPIED
        assert replication.version_replicate(version_id=version.pk) == replication.ALREADY
    assert len(dr_versions(dr_server, dr_bucket, version.storage_key)) == 1


def test_a_version_whose_bytes_differ_from_its_row_is_not_copied(
    versioned_primary, dr_server, dr_bucket, tenant
):
    document = upload(tenant)
    [version] = versions_of(document)
    with db.tenant_context(tenant.pk):
        DocumentVersion.objects.filter(pk=version.pk).update(sha256="0" * 64)
    with db.tenant_context(tenant.pk, atomic=False):
        assert replication.version_replicate(version_id=version.pk) == replication.FAILED
    assert dr_versions(dr_server, dr_bucket, version.storage_key) == []
    [version] = versions_of(document)
    assert version.dr_replicated_at is None


def test_the_sweep_copies_versions_whose_task_was_lost(
    versioned_primary,
    dr_server,
    dr_bucket,
    tenant,
    other_tenant,
    eager,
    django_capture_on_commit_callbacks,
):
    ours = [upload(tenant) for _ in range(2)]  # their on-commit tasks never run
    theirs = upload(other_tenant)
    with db.tenant_context(tenant.pk):
        assert DocumentVersion.objects.unreplicated().count() == 2

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.replicate_all_tenants() == 2

    for document in [*ours, theirs]:
        for version in versions_of(document):
            _assert_in_dr(dr_server, dr_bucket, version)


def test_the_sweep_pages_past_a_version_that_keeps_failing(
    versioned_primary,
    dr_server,
    dr_bucket,
    tenant,
    eager,
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    monkeypatch.setattr(replication, "SWEEP_BATCH", 1)
    broken, *good = [upload(tenant) for _ in range(3)]
    with db.tenant_context(tenant.pk):
        DocumentVersion.objects.filter(document_id=broken.pk).update(sha256="0" * 64)

    with django_capture_on_commit_callbacks(execute=True) as sent:
        assert tasks.replicate_all_tenants() == 1

    assert len(sent) == 3  # one task per batch of one, then no more
    for document in good:
        [version] = versions_of(document)
        _assert_in_dr(dr_server, dr_bucket, version)
    [version] = versions_of(broken)
    assert version.dr_replicated_at is None


def test_without_a_dr_bucket_nothing_is_sent_and_the_sweep_does_nothing(
    versioned_primary, tenant, settings, django_capture_on_commit_callbacks
):
    settings.DOCUMENTS_DR_BUCKET = ""
    with django_capture_on_commit_callbacks() as sent:
        upload(tenant)
    assert sent and not [callback for callback in sent if "replicate" in repr(callback)]
    assert tasks.replicate_all_tenants() == 0
    assert replication.primary_down() is False


def test_a_task_for_another_tenant_cannot_copy_or_see_this_tenants_version(
    versioned_primary, dr_server, dr_bucket, tenant, other_tenant
):
    document = upload(tenant)
    [version] = versions_of(document)
    outcome = tasks.replicate_versions.apply(
        kwargs={"version_ids": [version.pk], "tenant_id": str(other_tenant.pk)}
    ).get()
    assert outcome == {replication.GONE: 1}
    assert dr_versions(dr_server, dr_bucket, version.storage_key) == []


def test_storage_setup_makes_the_dr_bucket_versioned_and_encrypted(
    versioned_primary, dr_server, settings
):
    settings.DOCUMENTS_DR_BUCKET = "metis-dr-setup"
    settings.DOCUMENTS_DR_S3_ENDPOINT_URL = dr_server.endpoint_url
    settings.DOCUMENTS_DR_ACCESS_KEY_ID = dr_server.access_key
    settings.DOCUMENTS_DR_SECRET_ACCESS_KEY = dr_server.secret_key
    out = StringIO()
    call_command("storage_setup", stdout=out, no_color=True)
    text = out.getvalue()
    client = dr_server.client()
    try:
        assert client.get_bucket_versioning(Bucket="metis-dr-setup")["Status"] == "Enabled"
        rules = client.get_bucket_encryption(Bucket="metis-dr-setup")[
            "ServerSideEncryptionConfiguration"
        ]["Rules"]
        assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
        assert "DR bucket metis-dr-setup" in text
        assert "replication: noted" in text and "Celery replicator" in text
        again = StringIO()
        call_command("storage_setup", stdout=again, no_color=True)
        dr_part = again.getvalue().split("DR bucket", 1)[1]
        assert "applied" not in dr_part
    finally:
        client.delete_bucket(Bucket="metis-dr-setup")


def test_storage_setup_with_a_replication_role_on_seaweedfs_reports_the_refusal(
    versioned_primary, dr_server, dr_bucket, settings
):
    settings.DOCUMENTS_DR_REPLICATION_ROLE_ARN = "arn:aws:iam::123456789012:role/MetisReplication"
    out = StringIO()
    call_command("storage_setup", stdout=out, no_color=True)  # no CommandError
    assert "replication: refused" in out.getvalue()
    assert "the Celery replicator copies each version instead" in out.getvalue()


# --- The primary is stopped -------------------------------------------------------------------


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def test_with_the_primary_stopped_a_tenant_user_downloads_from_the_dr_copy(
    own_primary,
    dr_server,
    dr_bucket,
    tenant,
    tenant_client,
    eager,
    django_capture_on_commit_callbacks,
):
    content = pdf_bytes(b"kept in two regions")
    with django_capture_on_commit_callbacks(execute=True):
        document = upload(tenant, content)
    late = upload(tenant)  # its copy never runs: not in the DR bucket
    page = tenant_client.get("/documents/")
    assert BANNER not in page.content.decode()
    url = tenant_client.get(f"/documents/{document.pk}/download/")["Location"]
    assert url.startswith(own_primary.endpoint_url)

    own_primary.stop()
    replication._primary_answers.clear()  # the next page asks again at once

    page = tenant_client.get("/documents/")
    assert BANNER in page.content.decode()
    response = tenant_client.get(f"/documents/{document.pk}/download/")
    assert response.status_code == 302
    assert response["Location"].startswith(dr_server.endpoint_url)
    assert _fetch(response["Location"]) == content
    # A version not yet copied: a clear 503, not a link to a dead server.
    missing = tenant_client.get(f"/documents/{late.pk}/download/")
    assert missing.status_code == 503
    assert "disaster-recovery copy yet" in missing.content.decode()
    # Uploads are paused: a clear 503, nothing kept.
    refused = tenant_client.post(
        "/documents/upload/",
        {"document_type": "bank-statement", "file": uploaded(pdf_bytes())},
    )
    assert refused.status_code == 503
    assert "uploads are paused" in refused.content.decode()
    with db.tenant_context(tenant.pk):
        assert Document.objects.count() == 2


def test_the_primary_check_is_fast_and_kept_for_a_few_seconds(own_primary, dr_bucket, settings):
    assert replication.primary_down() is False
    own_primary.stop()
    assert replication.primary_down() is False  # the answer is kept
    replication._primary_answers.clear()
    started = timezone.now()
    assert replication.primary_down() is True
    assert (timezone.now() - started).total_seconds() < 2


# --- The lag figure -----------------------------------------------------------------------------


@pytest.mark.committed
def test_lag_figure_counts_versions_not_yet_copied_and_the_oldest_wait(
    versioned_primary, dr_server, dr_bucket, tenant, other_tenant
):
    from monitoring import exposition

    document = upload(tenant)
    upload(other_tenant)
    with db.tenant_context(tenant.pk):
        DocumentVersion.objects.filter(document_id=document.pk).update(
            dr_pending_since=timezone.now() - timedelta(minutes=10)
        )
    registry = exposition.registry()
    assert registry.get_sample_value("metis_dr_replication_pending_versions") == 2
    assert registry.get_sample_value("metis_dr_replication_lag_seconds") >= 600

    [version] = versions_of(document)
    with db.tenant_context(tenant.pk, atomic=False):
        replication.version_replicate(version_id=version.pk)
    assert registry.get_sample_value("metis_dr_replication_pending_versions") == 1
    assert registry.get_sample_value("metis_dr_replication_lag_seconds") < 600


# --- The admin ------------------------------------------------------------------------------------


def test_admin_shows_versions_due_per_tenant_and_each_versions_dr_copy(
    versioned_primary, dr_server, dr_bucket, staff_client, tenant
):
    from tests.documents.test_admin import DOCUMENTS, choose

    copied, due = upload(tenant), upload(tenant)
    [version] = versions_of(copied)
    with db.tenant_context(tenant.pk, atomic=False):
        replication.version_replicate(version_id=version.pk)
    choose(staff_client, tenant)
    page = staff_client.get(DOCUMENTS).content.decode()
    assert 'id="dr-lag"' in page
    assert "<td>Acme Lending</td><td>1</td>" in page.split('id="dr-lag"', 1)[1]
    copied_page = staff_client.get(f"{DOCUMENTS}{copied.pk}/change/").content.decode()
    assert "<td>copied " in copied_page
    due_page = staff_client.get(f"{DOCUMENTS}{due.pk}/change/").content.decode()
    assert "<td>due since " in due_page
