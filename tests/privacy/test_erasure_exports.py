"""Erasure reaches the portability exports: every ZIP holding the subject is purged (each
version, read back by listing them on the S3 server), its row marked so nothing offers it
again, and the ledger marks a restored row again."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from metis.objectstore import store
from privacy.erasure import ledger
from privacy.exports import archive, tasks
from privacy.exports import services as export_services
from privacy.exports.models import Export, ExportScope, ExportStatus
from tenants import db
from tests.privacy.conftest import erase, make_user, object_versions, upload_versions
from tests.privacy.test_exports import client_for, request_and_build

pytestmark = pytest.mark.usefixtures("versioned_bucket", "clickhouse_db")


def _versions_of(key: str) -> list[dict]:
    return [entry for entry in object_versions(key) if entry["Key"] == key]


def _reload(export: Export) -> Export:
    with db.tenant_context(export.tenant_id):
        return Export.objects.get(pk=export.pk)


def test_erasing_a_borrower_purges_every_export_holding_them_and_spares_the_rest(
    tenant, staff_user, approver
):
    admin = make_user(tenant, "boss@acme.example", is_admin=True)
    clerk = make_user(tenant, "clerk@acme.example")
    upload_versions(tenant, subject_ref="CUST-1", user=clerk, versions=2)
    upload_versions(tenant, subject_ref="CUST-2", user=admin, versions=1)
    borrower = request_and_build(admin, scope=ExportScope.BORROWER, subject_ref="CUST-1")
    whole = request_and_build(admin, scope=ExportScope.TENANT)
    uploader = request_and_build(clerk, scope=ExportScope.USER)  # holds CUST-1's document
    other = request_and_build(admin, scope=ExportScope.BORROWER, subject_ref="CUST-2")
    # A second version of one ZIP: the erasure must remove every version, not the newest.
    documents = store.documents_store()
    documents.put_bytes(key=borrower.object_key, data=b"older", content_type="application/zip")
    assert len(_versions_of(borrower.object_key)) == 2

    _, receipt = erase(tenant, kind="borrower", ref="CUST-1", staff=staff_user, approver=approver)

    for export in (borrower, whole, uploader):
        assert _versions_of(export.object_key) == []
        erased = _reload(export)
        assert erased.status == ExportStatus.ERASED and erased.deleted_at is not None
        assert "files" not in erased.summary  # the file list named the subject's documents
    assert len(_versions_of(other.object_key)) == 1
    assert _reload(other).status == ExportStatus.READY
    assert receipt["erased"]["portability_exports"] == {
        "files": 3,
        "versions": 4,
        "delete_markers": 0,
    }
    assert receipt["erased"]["postgresql"]["privacy_exports"]["erased"] == 3
    assert receipt["verified"]["portability_exports.versions_and_markers"] == 0
    assert receipt["verified"]["postgresql.privacy_exports"] == 0
    # Nothing offers the ZIP again: the link is refused, the page answers 410.
    with db.tenant_context(tenant.pk), pytest.raises(export_services.ExportNotReady):
        export_services.export_link(export=_reload(borrower), user=admin)
    page = client_for(admin).get(f"/exports/{borrower.pk}/download/")
    assert page.status_code == 410


def test_erasing_a_user_purges_their_own_export_and_keeps_the_rows_without_them(
    tenant, staff_user, approver
):
    leaver = make_user(tenant, "leaver@acme.example")
    stayer = make_user(tenant, "stayer@acme.example")
    upload_versions(tenant, user=leaver, versions=1)
    upload_versions(tenant, user=stayer, versions=1)
    mine = request_and_build(leaver, scope=ExportScope.USER)
    theirs = request_and_build(stayer, scope=ExportScope.USER)

    _, receipt = erase(tenant, kind="user", ref=str(leaver.pk), staff=staff_user, approver=approver)

    assert _versions_of(mine.object_key) == []
    kept = _reload(mine)
    assert kept.status == ExportStatus.ERASED
    assert kept.subject_user_id is None and kept.requested_by_id is None
    assert _reload(theirs).status == ExportStatus.READY
    assert len(_versions_of(theirs.object_key)) == 1
    assert set(receipt["verified"].values()) == {0}


def test_the_ledger_marks_an_export_row_a_restore_brought_back(tenant, staff_user, approver):
    admin = make_user(tenant, "boss@acme.example", is_admin=True)
    upload_versions(tenant, subject_ref="CUST-1", versions=1)
    export = request_and_build(admin, scope=ExportScope.BORROWER, subject_ref="CUST-1")
    erase(tenant, kind="borrower", ref="CUST-1", staff=staff_user, approver=approver)
    # What a tenant restore of a backup taken before the erasure puts back: a ready row.
    with db.tenant_context(tenant.pk):
        Export.objects.filter(pk=export.pk).update(status=ExportStatus.READY, deleted_at=None)

    ledger.ledger_replay(tenant_id=tenant.pk)

    assert _reload(export).status == ExportStatus.ERASED
    assert _versions_of(export.object_key) == []


def _erase_in_another_worker(**kwargs) -> dict:
    """Run an erasure on its own connection, as a second worker would, and wait for it."""
    outcome: dict = {}

    def work() -> None:
        try:
            outcome["receipt"] = erase(**kwargs)[1]
        finally:
            connection.close()

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(timeout=180)
    assert not worker.is_alive(), "the erasure waited on the build"
    return outcome


@pytest.mark.committed  # the erasure runs on its own connection, as a second worker
def test_an_export_erased_while_it_is_built_is_not_brought_back(
    tenant, staff_user, approver, monkeypatch
):
    admin = make_user(tenant, "boss@acme.example", is_admin=True)
    upload_versions(tenant, subject_ref="CUST-1", versions=2)
    built_then_erased: dict = {}
    real_archive = archive.archive_to_path

    def archive_then_erase(*args, **kwargs):
        # The ZIP now holds CUST-1; the erasure lands before the build stores and marks it.
        summary = real_archive(*args, **kwargs)
        built_then_erased.update(
            _erase_in_another_worker(
                tenant=tenant, kind="borrower", ref="CUST-1", staff=staff_user, approver=approver
            )
        )
        return summary

    monkeypatch.setattr(archive, "archive_to_path", archive_then_erase)
    with db.tenant_context(tenant.pk):
        export = export_services.export_request(
            requested_by=admin, scope=ExportScope.BORROWER, subject_ref="CUST-1"
        )
    result = tasks.export_build.apply(
        kwargs={"export_id": str(export.pk), "tenant_id": str(tenant.pk)}
    )

    assert built_then_erased["receipt"]["erased"]["postgresql"]["privacy_exports"]["erased"] == 1
    assert result.get() == ExportStatus.ERASED
    assert _reload(export).status == ExportStatus.ERASED
    key = export_services.export_key(tenant_id=tenant.pk, export_id=export.pk)
    assert _versions_of(key) == []  # the ZIP stored after the erasure was deleted again
    # A redelivered build message does not build it again.
    again = tasks.export_build.apply(
        kwargs={"export_id": str(export.pk), "tenant_id": str(tenant.pk)}
    )
    assert again.get() == ExportStatus.ERASED
    assert _versions_of(key) == []


def test_a_build_that_lost_its_worker_is_failed_by_the_hourly_job(tenant):
    user = make_user(tenant, "waiting@acme.example")
    with db.tenant_context(tenant.pk):
        stuck = export_services.export_request(requested_by=user, scope=ExportScope.USER)
        fresh = export_services.export_request(requested_by=user, scope=ExportScope.USER)
        Export.objects.filter(pk=stuck.pk).update(
            status=ExportStatus.RUNNING,
            created_at=timezone.now() - export_services.STALLED_AFTER - timedelta(minutes=1),
        )

    tasks.exports_delete_expired.apply().get()

    assert _reload(stuck).status == ExportStatus.FAILED
    assert "ask for a new export" in _reload(stuck).error
    assert _reload(fresh).status == ExportStatus.QUEUED
