"""Erasure across every store, read back from each store directly; another subject untouched."""

from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
import pytest
from django.contrib.sessions.models import Session
from django.db.models import Q

from analytics import clickhouse, exports, rollups
from audit.models import AuditEntry
from documents.models import Document, DocumentAccess, DocumentVersion
from metis.events.models import EventOutbox
from metis.objectstore import store
from privacy.erasure import stores
from privacy.models import ErasureRequest, ErasureStatus
from tenants import db
from tenants.models import TenantUser
from tests.analytics.conftest import clickhouse_rows
from tests.conftest import host_of
from tests.factories import TEST_PASSWORD
from tests.privacy.conftest import (
    cache_dashboards,
    dashboard_keys,
    deliver_events,
    erase,
    events_naming,
    export_now,
    make_user,
    object_versions,
    upload_versions,
)

pytestmark = pytest.mark.committed


def _folders(documents) -> list[str]:
    with db.tenant_context(documents[0].tenant_id):
        keys = DocumentVersion.objects.filter(document__in=documents).values_list(
            "storage_key", flat=True
        )
        return sorted({key.rsplit("/", 1)[0] + "/" for key in keys})


def _export_ids() -> set[str]:
    """Every id and uploader id in every stored version of every export file."""
    documents = store.documents_store()
    found = set()
    for key in documents.keys(exports.EXPORT_PREFIX):
        if not key.endswith(".parquet"):
            continue
        for entry in documents.version_entries(key):
            if entry["IsDeleteMarker"]:
                continue
            body = documents.client.get_object(
                Bucket=documents.bucket, Key=key, VersionId=entry["VersionId"]
            )["Body"].read()
            table = pq.read_table(io.BytesIO(body)).to_pydict()
            found |= set(table["id"]) | set(table.get("uploaded_by_id", []))
    return found


def _rolled_up_and_raw(tenant_id) -> tuple[int, int]:
    """The tenant's events as the dashboards' rollup sums them, and as the raw table counts."""
    t = str(tenant_id)
    rolled = "SELECT sum(events) FROM events_hourly WHERE tenant_id = {t:UUID}"
    raw = "SELECT count() FROM events WHERE tenant_id = {t:UUID}"
    return clickhouse_rows(rolled, t=t)[0][0], clickhouse_rows(raw, t=t)[0][0]


def test_erasing_a_borrower_leaves_nothing_in_any_store_and_spares_the_other(
    versioned_bucket, clickhouse_db, tenant, other_tenant, staff_user, approver
):
    mine = [upload_versions(tenant, subject_ref="CUST-1") for _ in range(2)]
    theirs = [upload_versions(tenant, subject_ref="CUST-2")]
    elsewhere = [upload_versions(other_tenant, subject_ref="CUST-1")]  # same ref, other tenant
    deliver_events()
    cache_dashboards(tenant)
    export_now()
    my_folders, their_folders = _folders(mine), _folders(theirs)
    assert len(my_folders) == 2 and all(len(object_versions(f)) == 3 for f in my_folders)
    assert events_naming(tenant.pk, document_ids=[d.pk for d in mine]) == 6
    assert dashboard_keys(tenant)
    assert {str(d.pk) for d in mine} <= _export_ids()
    # A plain DELETE on a versioned bucket only adds a marker: the erasure removes it too.
    documents = store.documents_store()
    documents.client.delete_object(Bucket=documents.bucket, Key=mine[0].storage_key)
    assert any(
        entry["IsDeleteMarker"]
        for entry in object_versions(
            my_folders[0] if mine[0].storage_key.startswith(my_folders[0]) else my_folders[1]
        )
    )
    export_now()  # a second run: the subject is in two runs' files
    counted = _rolled_up_and_raw(tenant.pk)
    assert counted[0] == counted[1] >= 9  # the dashboards' rollup counts the subject's events

    request, receipt = erase(
        tenant, kind="borrower", ref="CUST-1", staff=staff_user, approver=approver
    )

    # PostgreSQL, read as the tenant.
    with db.tenant_context(tenant.pk):
        assert not Document.objects.filter(metadata__contains={"subject_ref": "CUST-1"}).exists()
        assert not DocumentVersion.objects.filter(document_id__in=[d.pk for d in mine]).exists()
        assert not DocumentAccess.objects.filter(document_id__in=[d.pk for d in mine]).exists()
        assert not EventOutbox.objects.filter(
            data__document_id__in=[str(d.pk) for d in mine]
        ).exists()
        assert Document.objects.filter(pk=theirs[0].pk).exists()
        assert ErasureRequest.objects.get(pk=request.pk).status == ErasureStatus.DONE
    # S3: no version, no delete marker under any of the subject's folders.
    assert all(object_versions(f) == [] for f in my_folders)
    assert all(len(object_versions(f)) == 3 for f in their_folders)
    # ClickHouse: the events are gone, the other subject's stay.
    assert events_naming(tenant.pk, document_ids=[d.pk for d in mine]) == 0
    assert events_naming(tenant.pk, document_ids=[d.pk for d in theirs]) == 3
    # The dashboards' rollup was corrected: the erased events no longer count, nothing else moved.
    assert _rolled_up_and_raw(tenant.pk) == (counted[0] - 6, counted[1] - 6)
    with clickhouse.session() as ch:
        assert rollups.differences(ch, tenant_id=None) == []
    # Redis: no cached dashboard of the tenant.
    assert dashboard_keys(tenant) == []
    # Parquet exports: no row of the subject in any version of any file.
    ids = _export_ids()
    assert not ({str(d.pk) for d in mine} & ids)
    assert str(theirs[0].pk) in ids and str(elsewhere[0].pk) in ids
    # The other tenant's borrower with the same reference is another subject.
    with db.tenant_context(other_tenant.pk):
        assert Document.objects.filter(pk=elsewhere[0].pk).exists()
    assert object_versions(_folders(elsewhere)[0])
    # The receipt says what was erased where, and that each store was read back empty.
    assert receipt["erased"]["s3"]["versions"] == 6
    assert receipt["erased"]["s3"]["delete_markers"] == 1
    assert receipt["erased"]["parquet_exports"]["files_rewritten"] == 2
    assert receipt["erased"]["postgresql"]["documents"]["deleted"] == 2
    assert receipt["erased"]["clickhouse"]["events"] == 6
    assert set(receipt["verified"].values()) == {0}
    assert receipt["held"] == []
    json.dumps(receipt)


def test_erasing_a_user_signs_them_out_and_keeps_others_access_rows_without_them(
    versioned_bucket, clickhouse_db, tenant, staff_user, approver, client
):
    bob = make_user(tenant, "bob@acme.example")
    signed_in = client.__class__(HTTP_HOST=host_of(tenant))
    assert (
        signed_in.post("/login/", {"email": bob.email, "password": TEST_PASSWORD}).status_code
        == 302
    )
    his = upload_versions(tenant, user=bob)
    other = upload_versions(tenant, subject_ref="CUST-9", user=bob)  # the borrower's data
    with db.tenant_context(tenant.pk):
        DocumentAccess.objects.create(
            tenant=tenant, document=other, action="download", user=bob, ip_address="10.0.0.9"
        )
    deliver_events()
    sessions_before = Session.objects.count()
    assert (
        stores.sessions_remaining(
            stores.ErasurePlan(str(tenant.pk), "user", str(bob.pk), user_ids=[str(bob.pk)])
        )
        >= 1
    )

    _request, receipt = erase(
        tenant, kind="user", ref=str(bob.pk), staff=staff_user, approver=approver
    )

    with db.tenant_context(tenant.pk):
        assert not TenantUser.objects.filter(pk=bob.pk).exists()
        assert not Document.objects.filter(pk=his.pk).exists()
        # The borrower's document he uploaded stays, without his name on it.
        assert Document.objects.filter(pk=other.pk, uploaded_by=None).exists()
        assert not DocumentVersion.objects.filter(document=other).exclude(uploaded_by=None)
        kept = DocumentAccess.objects.get(document=other, action="download")
        assert kept.user_id is None and kept.ip_address is None
    assert Session.objects.count() == sessions_before - 1
    assert signed_in.get("/documents/").status_code == 302  # signed out
    assert events_naming(tenant.pk, user_ids=[bob.pk], document_ids=[his.pk]) == 0
    assert receipt["erased"]["postgresql"]["django_session"]["deleted"] == 1
    # The audit log is kept on purpose, named on the receipt with the law that keeps it.
    audit, ledger_entry = receipt["kept"]
    assert audit["store"] == "audit_log" and "17(3)" in audit["why"] and audit["until"]
    with db.tenant_context(tenant.pk):
        bobs = AuditEntry.objects.filter(
            Q(actor_id=str(bob.pk)) | Q(target_id__in=[str(bob.pk), str(his.pk)])
        )
        # His account's and his document's writes, erasure included: all still there.
        assert audit["rows"] == bobs.count() >= 5
    assert ledger_entry["store"] == "erasure_ledger"
