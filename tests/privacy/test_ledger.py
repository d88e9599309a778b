"""The erasure ledger is replayed after restores: a backup taken before an erasure never brings
the subject back (tenant restore into place, and a physical point-in-time restore)."""

from __future__ import annotations

import shutil
import time
import uuid

import pytest

from backups import cluster
from backups.services import physical, restore, tenant_export
from documents.models import Document
from privacy.erasure import ledger
from privacy.erasure.plan import ErasurePlan
from tenants import db
from tests.privacy.conftest import erase
from tests.support import backup_sandbox as sandbox

pytestmark = pytest.mark.django_db(databases=["default", "owner"])


def _document(tenant, ref: str) -> Document:
    with db.tenant_context(tenant.pk):
        return Document.objects.create(
            tenant=tenant,
            document_type="bank-statement",
            original_filename="s.pdf",
            content_type="application/pdf",
            size_bytes=1,
            sha256=uuid.uuid4().hex * 2,
            storage_key=f"tenants/{tenant.pk}/documents/bank-statements/{uuid.uuid4()}/x.pdf",
            metadata={"subject_ref": ref},
        )


def test_a_tenant_restore_of_an_export_taken_before_the_erasure_keeps_the_subject_erased(
    backup_objects, clickhouse_db, settings, tenant, staff_user, approver
):
    _server, bucket = backup_objects
    settings.AWS_STORAGE_BUCKET_NAME = bucket
    erased, kept = _document(tenant, "CUST-1"), _document(tenant, "CUST-2")
    run = tenant_export.tenant_export(tenant=tenant)  # the backup, before the erasure
    erase(tenant, kind="borrower", ref="CUST-1", staff=staff_user, approver=approver)

    restored = tenant_export.tenant_restore(run=run, replace=True)

    assert restored["documents"] == 2 and restored["erasures_replayed"] == 1
    with db.tenant_context(tenant.pk):
        assert not Document.objects.filter(pk=erased.pk).exists()
        assert Document.objects.filter(pk=kept.pk).exists()
    # Replaying again changes nothing (idempotent).
    assert ledger.ledger_replay(tenant_id=tenant.pk)["rows"] == 0


def test_a_point_in_time_restore_from_before_the_erasure_comes_back_without_the_subject(
    db, pg_sandbox
):
    tenant_id, erased, kept = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with pg_sandbox.connect(autocommit=True) as conn:
        # The tables the ledger touches, as the restored application database has them.
        conn.execute(
            "CREATE TABLE documents (id uuid PRIMARY KEY, tenant_id uuid, metadata jsonb, "
            "uploaded_by_id uuid, restore_requested_by_id uuid)"
        )
        conn.execute(
            "INSERT INTO documents VALUES (%s, %s, '{}', NULL, NULL), (%s, %s, '{}', NULL, NULL)",
            [erased, tenant_id, kept, tenant_id],
        )
    physical.backup_run_physical(kind="full")
    time.sleep(1.1)
    with pg_sandbox.connect(autocommit=True) as conn:
        time.sleep(0.05)
        point = conn.execute("SELECT clock_timestamp()").fetchone()[0]  # before the erasure
        time.sleep(0.05)
        conn.execute("DELETE FROM documents WHERE id = %s", [erased])  # the live erasure
        sandbox.switch_wal_and_wait(conn)
    plan = ErasurePlan(str(tenant_id), "borrower", "CUST-1", document_ids=[str(erased)])
    ledger.ledger_append(plan, request_id="test")

    data_dir = cluster.scratch_directory(pg_sandbox.target.os_user, prefix="metis-pitr-") / "data"
    try:
        outcome = restore.restore_point_in_time(data_dir=data_dir, to=point)
        restored = pg_sandbox.target.with_data_dir(data_dir, port=outcome.port)
        restored = type(restored)(**{**restored.__dict__, "socket_dir": outcome.socket_dir})
        with cluster.connect(restored) as conn:
            ids = {row[0] for row in conn.execute("SELECT id FROM documents").fetchall()}
        assert ids == {kept}
    finally:
        cluster.remove(restored) if "restored" in locals() else None
        shutil.rmtree(data_dir.parent, ignore_errors=True)
