"""reconcile_storage finds both kinds of drift (and stale uploads) and --repair fixes them."""

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command

from documents import reconcile, services
from documents.models import Document, DocumentVersion
from metis.objectstore import store
from tenants import db
from tests.documents.conftest import bucket_keys, pdf_bytes, stored_keys, upload
from tests.support.terminal import Terminal

NOW = timedelta(0)


@pytest.mark.committed
def test_reconcile_finds_and_repairs_drift_on_s3(s3_bucket, s3_server, tenant, other_tenant):
    kept = upload(tenant, name="kept.pdf")
    lost = upload(other_tenant, name="lost.pdf")
    store.documents_store().purge(lost.storage_key)  # a row without its object
    orphan = f"tenants/{tenant.pk}/documents/pan/{kept.pk}/orphan.pdf"
    s3_server.client().put_object(Bucket=s3_bucket, Key=orphan, Body=b"%PDF-1.7 orphan")
    stale = s3_server.client().create_multipart_upload(
        Bucket=s3_bucket, Key=f"tenants/{tenant.pk}/x"
    )

    drift = reconcile.storage_drift_find(min_age=NOW)
    assert drift.objects_without_rows == [orphan]
    assert drift.rows_without_objects == [(other_tenant.pk, lost.pk, 1, lost.storage_key)]
    assert drift.stale_uploads == [(f"tenants/{tenant.pk}/x", stale["UploadId"])]

    reconcile.storage_drift_repair(drift=drift)
    assert bucket_keys(s3_server, s3_bucket) == [kept.storage_key]
    assert s3_server.client().list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    with db.tenant_context(other_tenant.pk):
        lost.refresh_from_db()
        assert lost.deleted_at is not None and "object_missing" in lost.metadata
        assert not DocumentVersion.objects.filter(document=lost).exists()
    assert not services.document_is_downloadable(lost)
    assert not reconcile.storage_drift_find(min_age=NOW)


@pytest.mark.committed
def test_young_orphans_are_left_alone(s3_bucket, s3_server, tenant):
    # An upload between its object and its commit looks like an orphan: min_age protects it.
    s3_server.client().put_object(Bucket=s3_bucket, Key=f"tenants/{tenant.pk}/y.pdf", Body=b"x")
    assert not reconcile.storage_drift_find()


@pytest.mark.committed
def test_a_lost_replacement_falls_back_to_the_previous_version(s3_bucket, tenant):
    document = upload(tenant, name="v1.pdf")
    first_key = document.storage_key
    with db.tenant_context(tenant.pk):
        services.document_replace(
            document=document, file=io.BytesIO(pdf_bytes()), filename="v2.pdf"
        )
    with db.tenant_context(tenant.pk):
        document.refresh_from_db()
    store.documents_store().purge(document.storage_key)
    drift = reconcile.storage_drift_find(min_age=NOW)
    assert [row[2] for row in drift.rows_without_objects] == [2]
    reconcile.storage_drift_repair(drift=drift)
    with db.tenant_context(tenant.pk):
        document.refresh_from_db()
    assert (document.storage_key, document.original_filename) == (first_key, "v1.pdf")
    assert document.deleted_at is None and services.document_is_downloadable(document)


@pytest.mark.committed
def test_reconcile_command_reports_then_repairs(s3_bucket, tenant, capsys):
    upload(tenant)
    store.documents_store().put_bytes(
        key=f"tenants/{tenant.pk}/reports/stray.pdf", data=b"%PDF-1.7 stray", content_type="x/y"
    )
    with pytest.raises(CommandError, match="1 object\\(s\\) without rows"):
        call_command("reconcile_storage", "--min-age-minutes=0")
    captured = capsys.readouterr()
    assert f"object without row: tenants/{tenant.pk}/reports/stray.pdf" in captured.out
    assert captured.err == ""  # no progress lines when stderr is not a terminal
    err = Terminal()
    call_command("reconcile_storage", "--min-age-minutes=0", "--repair", stderr=err)
    assert "Repaired" in capsys.readouterr().out
    drawn = err.getvalue().split("\r")
    assert any(frame.startswith("deleting objects without rows: 100%") for frame in drawn)
    assert len(stored_keys()) == 1
    call_command("reconcile_storage", "--min-age-minutes=0")
    assert "No drift" in capsys.readouterr().out
    with db.tenant_context(tenant.pk):
        assert Document.objects.live().count() == 1
