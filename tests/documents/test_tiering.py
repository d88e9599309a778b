"""Tiering moves exactly the due documents, keeps encryption and metadata, and is idempotent,
crash-safe and confined to one tenant's prefix. Against the real SeaweedFS S3 server."""

from __future__ import annotations

import io
import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import DatabaseError
from django.utils import timezone

from documents import tiering
from documents.models import (
    AccessAction,
    Document,
    DocumentAccess,
    DocumentVersion,
    StorageClass,
)
from tenants import db
from tests.documents.stored_documents import (
    age,
    enable_versioning,
    put_document,
    reload,
    storage_class_of,
    versions_of,
)
from tests.support.terminal import Terminal

IA, GLACIER, STANDARD = StorageClass.STANDARD_IA, StorageClass.GLACIER, StorageClass.STANDARD


@pytest.fixture
def s3(s3_server, s3_bucket):
    client = s3_server.client()
    enable_versioning(client, s3_bucket)  # as storage_setup leaves the bucket
    return client


def tier(tenant, **options) -> tiering.TieringReport:
    """Run tiering as its task does: inside the tenant's context, opened by the caller."""
    with db.tenant_context(tenant.pk):
        return tiering.documents_tier_due(tenant_id=tenant.pk, **options)


def tier_in_batches(tenant, *, batch_size: int) -> tiering.TieringReport:
    """Run tiering as the command does: one tenant context (one transaction) per batch."""
    total, after = tiering.TieringReport(tenant_id=tenant.pk), None
    while True:
        report = tier(tenant, batch_size=batch_size, limit=batch_size, after=after)
        total.outcomes.update(report.outcomes)
        if not report.more:
            return total
        after = report.last_id


def test_tiering_moves_exactly_the_due_documents(s3, s3_bucket, tenant):
    fresh = put_document(s3, s3_bucket, tenant, days_old=0)
    young = put_document(s3, s3_bucket, tenant, days_old=29)
    just_ia = put_document(s3, s3_bucket, tenant, days_old=31)
    old_ia = put_document(s3, s3_bucket, tenant, days_old=89)
    just_glacier = put_document(s3, s3_bucket, tenant, days_old=91)
    ancient = put_document(s3, s3_bucket, tenant, days_old=400)
    already_ia = put_document(s3, s3_bucket, tenant, days_old=60, storage_class=IA)
    ia_due_glacier = put_document(s3, s3_bucket, tenant, days_old=120, storage_class=IA)
    deleted = put_document(s3, s3_bucket, tenant, days_old=120, deleted=True)

    report = tier(tenant)

    assert report.outcomes == {tiering.MOVED: 5}
    assert report.moved_to == {IA: 2, GLACIER: 3}
    expected = {
        fresh: STANDARD,
        young: STANDARD,
        just_ia: IA,
        old_ia: IA,
        just_glacier: GLACIER,
        ancient: GLACIER,
        already_ia: IA,
        ia_due_glacier: GLACIER,
        deleted: STANDARD,  # soft-deleted: its object is not rewritten
    }
    for document, storage_class in expected.items():
        assert reload(document).storage_class == storage_class
        assert storage_class_of(s3, s3_bucket, document.storage_key) == storage_class
    untouched = [fresh, young, already_ia, deleted]
    for document in untouched:
        assert len(versions_of(s3, s3_bucket, document.storage_key)) == 1


def test_tiering_keeps_encryption_metadata_and_records_the_new_version(s3, s3_bucket, tenant):
    document = put_document(s3, s3_bucket, tenant, days_old=100)
    before = s3.head_object(Bucket=s3_bucket, Key=document.storage_key)

    tier(tenant)

    head = s3.head_object(Bucket=s3_bucket, Key=document.storage_key)
    assert head["StorageClass"] == GLACIER
    assert head["ServerSideEncryption"] == "AES256"
    assert (
        head["Metadata"]
        == before["Metadata"]
        == {
            "sha256": document.sha256,
            "document-id": str(document.pk),
        }
    )
    assert head["ContentType"] == "application/pdf"
    assert head["ContentDisposition"] == 'attachment; filename="pan.pdf"'
    assert head["VersionId"] != before["VersionId"]
    body = s3.get_object(Bucket=s3_bucket, Key=document.storage_key)["Body"].read()
    assert body.startswith(b"%PDF-1.4")
    moved = reload(document)
    assert moved.version_id == head["VersionId"]
    assert moved.storage_class_changed_at > document.storage_class_changed_at
    with db.tenant_context(tenant.pk):
        assert DocumentVersion.objects.get(document=document).version_id == head["VersionId"]
        log = DocumentAccess.objects.get(document=document)
    assert log.action == AccessAction.TIER_CHANGE
    assert log.user is None and log.staff is None  # the system did it


def test_tiered_copy_is_still_encrypted_on_the_servers_disk(s3, s3_server, s3_bucket, tenant):
    secret = os.urandom(48)  # random: no compression can hide it from the scan
    document = put_document(s3, s3_bucket, tenant, days_old=100, body=b"%PDF-1.4\n" + secret)
    unencrypted = os.urandom(48)  # the control: proves the scan would find plaintext
    s3.put_object(Bucket=s3_bucket, Key=f"tenants/{tenant.pk}/reports/plain.bin", Body=unencrypted)

    tier(tenant)

    assert storage_class_of(s3, s3_bucket, document.storage_key) == GLACIER
    assert s3.get_object(Bucket=s3_bucket, Key=document.storage_key)["Body"].read().endswith(secret)
    on_disk = b"".join(
        path.read_bytes() for path in Path(s3_server.data_dir).rglob("*") if path.is_file()
    )
    assert unencrypted in on_disk
    assert secret not in on_disk


def test_tiering_twice_moves_nothing_the_second_time(s3, s3_bucket, tenant):
    documents = [put_document(s3, s3_bucket, tenant, days_old=days) for days in (5, 40, 100)]
    first = tier(tenant)
    versions = {d.pk: len(versions_of(s3, s3_bucket, d.storage_key)) for d in documents}

    second = tier(tenant)

    assert first.outcomes == {tiering.MOVED: 2}
    assert second.outcomes == {}
    assert versions == {d.pk: len(versions_of(s3, s3_bucket, d.storage_key)) for d in documents}
    assert [storage_class_of(s3, s3_bucket, d.storage_key) for d in documents] == [
        STANDARD,
        IA,
        GLACIER,
    ]


def test_a_document_moves_on_from_ia_to_glacier_when_it_ages(s3, s3_bucket, tenant):
    document = put_document(s3, s3_bucket, tenant, days_old=45)
    tier(tenant)
    assert reload(document).storage_class == IA

    age(document, days=95)
    tier(tenant)

    assert reload(document).storage_class == GLACIER
    assert storage_class_of(s3, s3_bucket, document.storage_key) == GLACIER
    assert s3.head_object(Bucket=s3_bucket, Key=document.storage_key)["ServerSideEncryption"]


def test_a_crash_between_copy_and_database_update_is_repaired_by_the_next_run(
    s3, s3_bucket, tenant, monkeypatch
):
    documents = sorted(
        (put_document(s3, s3_bucket, tenant, days_old=40) for _ in range(5)), key=lambda d: d.pk
    )
    record = tiering._record_class
    calls = []

    def record_then_crash(**kwargs):
        calls.append(kwargs["document"].pk)
        if len(calls) == 3:
            raise RuntimeError("worker killed after the copy")
        record(**kwargs)

    monkeypatch.setattr(tiering, "_record_class", record_then_crash)
    with pytest.raises(RuntimeError, match="worker killed"):
        tier_in_batches(tenant, batch_size=2)

    # The first batch committed; the third object was copied, its row rolled back.
    assert [reload(d).storage_class for d in documents] == [IA, IA, STANDARD, STANDARD, STANDARD]
    assert [storage_class_of(s3, s3_bucket, d.storage_key) for d in documents] == [
        IA,
        IA,
        IA,
        STANDARD,
        STANDARD,
    ]

    monkeypatch.setattr(tiering, "_record_class", record)
    report = tier_in_batches(tenant, batch_size=2)

    assert report.outcomes == {tiering.RECORDED: 1, tiering.MOVED: 2}
    for document in documents:
        head = s3.head_object(Bucket=s3_bucket, Key=document.storage_key)
        assert reload(document).storage_class == head["StorageClass"] == IA
        assert reload(document).version_id == head["VersionId"]
        # exactly one copy per object: the repair did not copy the third one again
        assert len(versions_of(s3, s3_bucket, document.storage_key)) == 2


class WorkerKilled(BaseException):
    """SIGKILL between an object's copy and its row's update: no handler of ours runs."""


def test_a_run_killed_between_copy_and_update_is_finished_by_the_sweep(
    s3, s3_bucket, tenant, monkeypatch
):
    documents = sorted(
        (put_document(s3, s3_bucket, tenant, days_old=40) for _ in range(6)), key=lambda d: d.pk
    )
    record = tiering._record_class
    calls = []

    def record_unless_killed(**kwargs):
        calls.append(kwargs["document"].pk)
        if len(calls) == 4:
            raise WorkerKilled
        record(**kwargs)

    monkeypatch.setattr(tiering, "_record_class", record_unless_killed)
    # As the tiering task runs: a tenant scope, each document committed on its own.
    with pytest.raises(WorkerKilled), db.tenant_context(tenant.pk, atomic=False):
        tiering.documents_tier_due(tenant_id=tenant.pk)
    monkeypatch.setattr(tiering, "_record_class", record)

    # What the kill left: three rows recorded, the fourth object copied but its row not.
    rows = [reload(d) for d in documents]
    objects = [storage_class_of(s3, s3_bucket, d.storage_key) for d in documents]
    assert [row.storage_class for row in rows] == [IA, IA, IA, STANDARD, STANDARD, STANDARD]
    assert objects == [IA, IA, IA, IA, STANDARD, STANDARD]
    assert [bool(row.tiering_started_at) for row in rows] == [False] * 3 + [True] * 3
    # The claims hold off another run until they are stale, and a fresh claim off the sweep.
    assert tier(tenant).outcomes == {}
    with db.tenant_context(tenant.pk, atomic=False):
        assert tiering.documents_tiering_sweep(tenant_id=tenant.pk).outcomes == {}

    with db.tenant_context(tenant.pk, atomic=False):
        report = tiering.documents_tiering_sweep(tenant_id=tenant.pk, stale_after=timedelta(0))

    assert report.outcomes == {tiering.RECORDED: 1, tiering.MOVED: 2}
    for document in documents:
        row = reload(document)
        head = s3.head_object(Bucket=s3_bucket, Key=document.storage_key)
        assert row.storage_class == head.get("StorageClass", STANDARD) == IA
        assert row.version_id == head["VersionId"]
        assert row.tiering_target == "" and row.tiering_started_at is None
        assert len(versions_of(s3, s3_bucket, document.storage_key)) == 2  # one copy each
    with db.tenant_context(tenant.pk):
        changes = DocumentAccess.objects.for_tenant(tenant.pk).filter(
            action=AccessAction.TIER_CHANGE
        )
        assert sorted(changes.values_list("document_id", flat=True)) == [d.pk for d in documents]
    with db.tenant_context(tenant.pk, atomic=False):
        again = tiering.documents_tiering_sweep(tenant_id=tenant.pk, stale_after=timedelta(0))
    assert again.outcomes == {}


def test_the_sweep_leaves_other_tenants_claims_alone(s3, s3_bucket, tenant, other_tenant):
    theirs = put_document(s3, s3_bucket, other_tenant, days_old=40)
    with db.tenant_context(other_tenant.pk):
        Document.objects.for_tenant(other_tenant.pk).filter(pk=theirs.pk).update(
            tiering_target=IA, tiering_started_at=timezone.now() - timedelta(hours=1)
        )
    with db.tenant_context(tenant.pk, atomic=False):
        report = tiering.documents_tiering_sweep(tenant_id=tenant.pk, stale_after=timedelta(0))
    assert report.outcomes == {}
    assert reload(theirs).tiering_target == IA
    assert storage_class_of(s3, s3_bucket, theirs.storage_key) == STANDARD


def test_a_failed_database_update_is_counted_and_the_rest_of_the_batch_goes_on(
    s3, s3_bucket, tenant, monkeypatch
):
    documents = sorted(
        (put_document(s3, s3_bucket, tenant, days_old=100) for _ in range(3)), key=lambda d: d.pk
    )
    record = tiering._record_class

    def fail_for_the_first(**kwargs):
        if kwargs["document"].pk == documents[0].pk:
            raise DatabaseError("deadlock detected")
        record(**kwargs)

    monkeypatch.setattr(tiering, "_record_class", fail_for_the_first)
    report = tier(tenant)
    assert report.outcomes == {tiering.FAILED: 1, tiering.MOVED: 2}
    assert reload(documents[0]).storage_class == STANDARD

    monkeypatch.setattr(tiering, "_record_class", record)
    assert tier(tenant).outcomes == {tiering.RECORDED: 1}
    assert reload(documents[0]).storage_class == GLACIER


def test_tenant_run_never_touches_another_tenants_objects(s3, s3_bucket, tenant, other_tenant):
    ours = put_document(s3, s3_bucket, tenant, days_old=100)
    theirs = [put_document(s3, s3_bucket, other_tenant, days_old=days) for days in (40, 100)]

    report = tier(tenant)

    assert report.outcomes == {tiering.MOVED: 1}
    assert reload(ours).storage_class == GLACIER
    for document in theirs:
        assert reload(document).storage_class == STANDARD
        assert storage_class_of(s3, s3_bucket, document.storage_key) == STANDARD
        assert len(versions_of(s3, s3_bucket, document.storage_key)) == 1


def test_a_row_forged_to_point_into_another_tenants_prefix_is_refused(
    s3, s3_bucket, tenant, other_tenant
):
    victim_key = f"tenants/{other_tenant.pk}/documents/pan/victim/secret.pdf"
    s3.put_object(Bucket=s3_bucket, Key=victim_key, Body=b"%PDF B", ServerSideEncryption="AES256")
    forged = put_document(s3, s3_bucket, tenant, days_old=100, key=victim_key)
    assert forged.tenant_id == tenant.pk

    report = tier(tenant)

    assert report.outcomes == {tiering.REFUSED: 1}
    assert storage_class_of(s3, s3_bucket, victim_key) == STANDARD
    assert len(versions_of(s3, s3_bucket, victim_key)) == 1
    assert reload(forged).storage_class == STANDARD
    with db.tenant_context(tenant.pk):
        assert not DocumentAccess.objects.filter(document=forged).exists()


def test_tiering_requires_the_given_tenants_context_and_opens_none(
    s3, s3_bucket, tenant, other_tenant
):
    document = put_document(s3, s3_bucket, tenant, days_old=100)
    assert db.current_tenant_id() is None
    with pytest.raises(db.TenantContextError, match="no tenant context"):
        tiering.documents_tier_due(tenant_id=tenant.pk)
    with db.tenant_context(other_tenant.pk), pytest.raises(db.TenantContextError):
        tiering.documents_tier_due(tenant_id=tenant.pk)
    with db.tenant_context(tenant.pk):
        tiering.documents_tier_due(tenant_id=tenant.pk)
        assert db.current_tenant_id() == tenant.pk
    assert db.current_tenant_id() is None
    assert reload(document).storage_class == GLACIER


def test_staff_tier_change_moves_a_document_back_to_standard(s3, s3_bucket, tenant, staff_user):
    document = put_document(s3, s3_bucket, tenant, storage_class=GLACIER)
    with db.tenant_context(tenant.pk):
        outcome = tiering.document_tier_change(
            document=document, storage_class=STANDARD, by_staff=staff_user
        )
        again = tiering.document_tier_change(
            document=reload(document), storage_class=STANDARD, by_staff=staff_user
        )
        log = DocumentAccess.objects.get(document=document)
    assert (outcome, again) == (tiering.MOVED, tiering.ALREADY)
    assert storage_class_of(s3, s3_bucket, document.storage_key) == STANDARD
    assert reload(document).storage_class == STANDARD
    assert log.staff == staff_user


def test_tier_change_refuses_outside_the_documents_tenant_context(
    s3, s3_bucket, tenant, other_tenant
):
    document = put_document(s3, s3_bucket, tenant)
    with pytest.raises(db.TenantContextError):
        tiering.document_tier_change(document=document, storage_class=GLACIER)
    with db.tenant_context(other_tenant.pk), pytest.raises(db.TenantContextError):
        tiering.document_tier_change(document=document, storage_class=GLACIER)
    assert storage_class_of(s3, s3_bucket, document.storage_key) == STANDARD


# --- The command -------------------------------------------------------------------------------


def test_tier_documents_dry_run_prints_counts_and_changes_nothing(
    s3, s3_bucket, tenant, other_tenant
):
    documents = [
        put_document(s3, s3_bucket, tenant, days_old=40),
        put_document(s3, s3_bucket, tenant, days_old=100),
        put_document(s3, s3_bucket, tenant, days_old=200),
        put_document(s3, s3_bucket, other_tenant, days_old=50),
    ]
    out = io.StringIO()

    call_command("tier_documents", "--dry-run", stdout=out, stderr=io.StringIO())

    lines = out.getvalue().splitlines()
    assert [line.split() for line in lines if line.startswith(("acme", "globex"))] == [
        ["acme", "1", "2"],
        ["globex", "1", "0"],
    ]
    assert "4 document(s) due" in lines
    assert "dry run: nothing moved" in lines
    for document in documents:
        assert reload(document).storage_class == STANDARD
        assert storage_class_of(s3, s3_bucket, document.storage_key) == STANDARD


def test_tier_documents_applies_the_plan_for_one_tenant_with_a_progress_bar(
    s3, s3_bucket, tenant, other_tenant
):
    ours = [put_document(s3, s3_bucket, tenant, days_old=d) for d in (40, 100, 100)]
    theirs = put_document(s3, s3_bucket, other_tenant, days_old=100)
    out, err = io.StringIO(), Terminal()

    call_command("tier_documents", "--tenant", "acme", "--batch-size", "2", stdout=out, stderr=err)

    assert err.getvalue().rsplit("\r", 1)[-1].startswith("100%|##########| 3/3 ")
    assert "3 moved" in out.getvalue()
    assert [reload(d).storage_class for d in ours] == [IA, GLACIER, GLACIER]
    assert reload(theirs).storage_class == STANDARD
    out = io.StringIO()
    call_command("tier_documents", "--tenant", "acme", stdout=out, stderr=io.StringIO())
    assert "0 document(s) due" in out.getvalue()


def test_tier_documents_draws_no_progress_when_stderr_is_not_a_terminal(s3, s3_bucket, tenant):
    document = put_document(s3, s3_bucket, tenant, days_old=100)
    out, err = io.StringIO(), io.StringIO()

    call_command("tier_documents", "--tenant", "acme", stdout=out, stderr=err)

    assert "1 moved" in out.getvalue() and err.getvalue() == ""
    assert reload(document).storage_class == GLACIER


def test_a_replaced_document_counts_its_age_from_the_newest_version(s3, s3_bucket, tenant):
    document = put_document(s3, s3_bucket, tenant, days_old=200)
    with db.tenant_context(tenant.pk):
        DocumentVersion.objects.create(
            tenant=tenant,
            document=document,
            number=2,
            original_filename="pan-new.pdf",
            content_type="application/pdf",
            size_bytes=1,
            sha256="1" * 64,
            storage_key=document.storage_key,
        )  # stored now: the document is fresh again

    assert tier(tenant).outcomes == {}
    assert storage_class_of(s3, s3_bucket, document.storage_key) == STANDARD
