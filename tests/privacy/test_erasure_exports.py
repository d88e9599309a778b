"""Erasure reaches the portability exports: every ZIP holding the subject is purged (each
version, read back by listing them on the S3 server), its row marked so nothing offers it
again, and the ledger marks a restored row again."""

from __future__ import annotations

import pytest

from metis.objectstore import store
from privacy.erasure import ledger
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
