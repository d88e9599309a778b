"""The tiering run's fast path, as the Celery task and the command run it (no transaction held
by the caller): copies on a thread pool with no HEAD, guarded by the row's ETag; rows written a
batch at a time; drift noticed, crashes repaired. Against the real SeaweedFS S3 server, with
rows committed for real (the pool path is taken only when the claims are durable)."""

from __future__ import annotations

import itertools
import threading
from datetime import timedelta

import pytest
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext

from documents import tiering
from documents.models import AccessAction, Document, DocumentAccess, DocumentVersion, StorageClass
from metis.events.models import EventOutbox
from metis.objectstore import store
from tenants import db
from tests.documents.stored_documents import (
    enable_versioning,
    put_document,
    reload,
    storage_class_of,
    versions_of,
)

IA, GLACIER, STANDARD = StorageClass.STANDARD_IA, StorageClass.GLACIER, StorageClass.STANDARD

pytestmark = pytest.mark.committed


@pytest.fixture
def s3(s3_server, s3_bucket, settings):
    settings.DOCUMENT_TIERING_WORKERS = 4
    client = s3_server.client()
    enable_versioning(client, s3_bucket)
    return client


@pytest.fixture
def requests_seen():
    """Count the S3 requests the app's own client sends, by operation, and the threads."""
    seen: dict[str, int] = {}
    threads: set[str] = set()
    lock = threading.Lock()

    def count(model, **kwargs):
        with lock:
            seen[model.name] = seen.get(model.name, 0) + 1
            threads.add(threading.current_thread().name)

    events = store.documents_store().client.meta.events
    events.register("before-call.s3", count)
    yield seen, threads
    events.unregister("before-call.s3", count)


def tier(tenant, **options) -> tiering.TieringReport:
    """Run tiering as its task does: a tenant scope, no transaction around it."""
    with db.tenant_context(tenant.pk, atomic=False):
        return tiering.documents_tier_due(tenant_id=tenant.pk, **options)


def sweep(tenant) -> tiering.SweepReport:
    with db.tenant_context(tenant.pk, atomic=False):
        return tiering.documents_tiering_sweep(tenant_id=tenant.pk, stale_after=timedelta(0))


def test_the_pool_moves_documents_with_one_copy_each_and_no_head(
    s3, s3_bucket, tenant, requests_seen
):
    documents = [put_document(s3, s3_bucket, tenant, days_old=days) for days in [40] * 6 + [100]]
    before = {d.pk: s3.head_object(Bucket=s3_bucket, Key=d.storage_key) for d in documents}
    seen, threads = requests_seen
    seen.clear(), threads.clear()  # the test's own puts and heads went through the same client

    report = tier(tenant)

    assert report.outcomes == {tiering.MOVED: 7}
    assert report.moved_to == {IA: 6, GLACIER: 1}
    assert seen == {"CopyObject": 7}  # no HeadObject: the row's ETag guards each copy
    assert len(threads) > 1  # the copies ran on the pool, several at once
    for document in documents:
        head = s3.head_object(Bucket=s3_bucket, Key=document.storage_key)
        row = reload(document)
        assert head["StorageClass"] == row.storage_class != STANDARD
        assert head["ServerSideEncryption"] == "AES256"
        old = before[document.pk]
        assert (
            head["Metadata"]
            == old["Metadata"]
            == {
                "sha256": document.sha256,
                "document-id": str(document.pk),
            }
        )
        assert head["ContentType"] == "application/pdf"
        assert head["ContentDisposition"] == old["ContentDisposition"]
        assert row.version_id == head["VersionId"] != old["VersionId"]
        assert row.etag == head["ETag"] == old["ETag"]
        assert row.tiering_target == "" and row.tiering_started_at is None
        assert len(versions_of(s3, s3_bucket, document.storage_key)) == 2
    with db.tenant_context(tenant.pk):
        assert sorted(
            DocumentVersion.objects.for_tenant(tenant).values_list("version_id", flat=True)
        ) == sorted(reload(d).version_id for d in documents)
        logged = DocumentAccess.objects.for_tenant(tenant).filter(action=AccessAction.TIER_CHANGE)
        assert sorted(logged.values_list("document_id", flat=True)) == sorted(
            d.pk for d in documents
        )
        events = EventOutbox.objects.for_tenant(tenant).filter(event_type="document.tier_changed")
        assert sorted((e.data["document_id"], e.data["to_class"]) for e in events) == sorted(
            (str(d.pk), reload(d).storage_class) for d in documents
        )
    assert tier(tenant).outcomes == {}  # idempotent: nothing due the second time


def test_a_batch_costs_the_same_queries_for_three_documents_or_twelve(s3, s3_bucket, tenant):
    def queries_to_tier(count: int, days_old: int) -> int:
        for _ in range(count):
            put_document(s3, s3_bucket, tenant, days_old=days_old)
        with CaptureQueriesContext(connection) as queries:
            report = tier(tenant)
        assert report.outcomes == {tiering.MOVED: count}
        return len(queries)

    assert queries_to_tier(3, days_old=40) == queries_to_tier(12, days_old=40)


def test_an_object_rewritten_behind_the_rows_back_is_not_tiered(s3, s3_bucket, tenant):
    kept = put_document(s3, s3_bucket, tenant, days_old=40)
    rewritten = put_document(s3, s3_bucket, tenant, days_old=40)
    deleted = put_document(s3, s3_bucket, tenant, days_old=40)
    s3.put_object(
        Bucket=s3_bucket, Key=rewritten.storage_key, Body=b"not the document", ContentType="x/y"
    )
    s3.delete_object(Bucket=s3_bucket, Key=deleted.storage_key)  # a delete marker on top

    report = tier(tenant)

    assert report.outcomes == {tiering.MOVED: 1, tiering.DRIFTED: 2}
    assert reload(kept).storage_class == IA
    assert storage_class_of(s3, s3_bucket, rewritten.storage_key) == STANDARD
    assert len(versions_of(s3, s3_bucket, rewritten.storage_key)) == 2  # no copy was made
    assert s3.get_object(Bucket=s3_bucket, Key=rewritten.storage_key)["Body"].read() == (
        b"not the document"
    )
    assert len(versions_of(s3, s3_bucket, deleted.storage_key)) == 1
    for document in (rewritten, deleted):
        row = reload(document)
        assert row.storage_class == STANDARD and row.version_id == document.version_id
        assert row.tiering_started_at is None  # released: the next run looks again
    with db.tenant_context(tenant.pk):
        assert list(
            DocumentAccess.objects.for_tenant(tenant).values_list("document_id", flat=True)
        ) == [kept.pk]
    assert tier(tenant).outcomes == {tiering.DRIFTED: 2}  # and still leaves them alone


def test_a_rewritten_object_is_noticed_on_a_row_without_an_etag(s3, s3_bucket, tenant):
    legacy = put_document(s3, s3_bucket, tenant, days_old=40)
    same_bytes = put_document(s3, s3_bucket, tenant, days_old=40)
    with db.tenant_context(tenant.pk):  # rows stored before the ETag was kept
        Document.objects.for_tenant(tenant).update(etag="")
    s3.put_object(Bucket=s3_bucket, Key=legacy.storage_key, Body=b"other bytes")

    report = tier(tenant)

    assert report.outcomes == {tiering.MOVED: 1, tiering.DRIFTED: 1}
    assert storage_class_of(s3, s3_bucket, legacy.storage_key) == STANDARD
    moved = reload(same_bytes)
    head = s3.head_object(Bucket=s3_bucket, Key=same_bytes.storage_key)
    assert moved.etag == head["ETag"]  # learnt by the HEAD: the next move needs none


def test_a_copy_made_outside_a_claim_is_copied_again_and_the_row_ends_right(s3, s3_bucket, tenant):
    # A staff tier change whose transaction rolled back after its copy: the object moved, its
    # row did not, and no claim says so. The same bytes keep the ETag, so the fast path copies
    # once more: a known cost (one extra noncurrent version), not a wrong row.
    document = put_document(s3, s3_bucket, tenant, days_old=40)
    s3.copy_object(
        Bucket=s3_bucket,
        Key=document.storage_key,
        CopySource={"Bucket": s3_bucket, "Key": document.storage_key},
        StorageClass=IA,
        MetadataDirective="COPY",
        ServerSideEncryption="AES256",
    )

    assert tier(tenant).outcomes == {tiering.MOVED: 1}

    row = reload(document)
    head = s3.head_object(Bucket=s3_bucket, Key=document.storage_key)
    assert row.storage_class == head["StorageClass"] == IA
    assert row.version_id == head["VersionId"] and row.etag == head["ETag"]
    assert len(versions_of(s3, s3_bucket, document.storage_key)) == 3


class WorkerKilled(BaseException):
    """SIGKILL in the middle of a batch's copies: no handler of ours runs."""


def test_a_run_killed_mid_pool_is_finished_by_the_sweep_with_one_copy_each(
    s3, s3_bucket, tenant, monkeypatch
):
    documents = [put_document(s3, s3_bucket, tenant, days_old=40) for _ in range(6)]
    move = store.ObjectStore.move_class
    calls = itertools.count(1)

    def three_then_killed(self, **kwargs):
        if next(calls) > 3:
            raise WorkerKilled
        return move(self, **kwargs)

    monkeypatch.setattr(store.ObjectStore, "move_class", three_then_killed)
    with pytest.raises(WorkerKilled):
        tier(tenant)
    monkeypatch.setattr(store.ObjectStore, "move_class", move)

    # Three objects copied, no row recorded, every claim left behind.
    objects = [storage_class_of(s3, s3_bucket, d.storage_key) for d in documents]
    assert sorted(objects) == [STANDARD] * 3 + [IA] * 3
    rows = [reload(d) for d in documents]
    assert {row.storage_class for row in rows} == {STANDARD}
    assert all(row.tiering_started_at for row in rows)
    assert tier(tenant).outcomes == {}  # fresh claims hold off the next run

    report = sweep(tenant)

    assert report.outcomes == {tiering.RECORDED: 3, tiering.MOVED: 3}
    for document in documents:
        row = reload(document)
        head = s3.head_object(Bucket=s3_bucket, Key=document.storage_key)
        assert row.storage_class == head["StorageClass"] == IA
        assert row.version_id == head["VersionId"] and row.tiering_started_at is None
        assert len(versions_of(s3, s3_bucket, document.storage_key)) == 2  # one copy each
    assert sweep(tenant).outcomes == {}


def test_stale_claims_taken_by_the_next_run_are_checked_before_copying(
    s3, s3_bucket, tenant, monkeypatch, settings
):
    documents = [put_document(s3, s3_bucket, tenant, days_old=40) for _ in range(4)]
    move = store.ObjectStore.move_class
    calls = itertools.count(1)

    def two_then_killed(self, **kwargs):
        if next(calls) > 2:
            raise WorkerKilled
        return move(self, **kwargs)

    monkeypatch.setattr(store.ObjectStore, "move_class", two_then_killed)
    with pytest.raises(WorkerKilled):
        tier(tenant)
    monkeypatch.setattr(store.ObjectStore, "move_class", move)
    settings.DOCUMENT_TIERING_STALE_MINUTES = 0  # the claims are now stale: due again

    assert tier(tenant).outcomes == {tiering.RECORDED: 2, tiering.MOVED: 2}
    for document in documents:
        assert reload(document).storage_class == IA
        assert len(versions_of(s3, s3_bucket, document.storage_key)) == 2


def test_a_failed_batch_record_falls_back_to_one_row_at_a_time(s3, s3_bucket, tenant, monkeypatch):
    documents = sorted(
        (put_document(s3, s3_bucket, tenant, days_old=100) for _ in range(3)), key=lambda d: d.pk
    )
    record = tiering._record_class

    def batch_fails(*args, **kwargs):
        raise DatabaseError("deadlock detected")

    def fail_for_the_first(**kwargs):
        if kwargs["document"].pk == documents[0].pk:
            raise DatabaseError("deadlock detected")
        record(**kwargs)

    monkeypatch.setattr(tiering, "_classes_record", batch_fails)
    monkeypatch.setattr(tiering, "_record_class", fail_for_the_first)
    assert tier(tenant).outcomes == {tiering.FAILED: 1, tiering.MOVED: 2}
    failed = reload(documents[0])
    assert failed.storage_class == STANDARD and failed.tiering_started_at is None
    assert failed.etag == ""  # its copy was made: the next run reads the object first
    monkeypatch.undo()

    assert tier(tenant).outcomes == {tiering.RECORDED: 1}
    assert reload(documents[0]).storage_class == GLACIER
    for document in documents:
        assert len(versions_of(s3, s3_bucket, document.storage_key)) == 2
