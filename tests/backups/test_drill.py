"""Restore drills: the latest backup restores, replays, passes the checks; RTO/RPO recorded."""

from __future__ import annotations

import glob
import tempfile
import uuid

import pytest

from backups.models import BackupRun
from backups.services import drill, physical
from privacy.erasure import ledger
from privacy.erasure.plan import ErasurePlan

TENANT_SCHEMA = """
CREATE TABLE loans (id serial PRIMARY KEY, tenant_id uuid NOT NULL, amount numeric);
CREATE TABLE payments (
    id serial PRIMARY KEY, tenant_id uuid NOT NULL, loan_id int REFERENCES loans
);
CREATE TABLE settings (key text PRIMARY KEY, value text);
"""


def _insert(conn, tenant: uuid.UUID, loans: int) -> None:
    conn.execute(
        "INSERT INTO loans (tenant_id, amount) SELECT %s, g FROM generate_series(1, %s) g",
        [tenant, loans],
    )
    conn.execute(
        "INSERT INTO payments (tenant_id, loan_id) SELECT tenant_id, id FROM loans "
        "WHERE tenant_id = %s",
        [tenant],
    )


def test_drill_restores_the_latest_backup_replays_and_passes_the_checks(db, pg_sandbox):
    acme, globex = uuid.uuid4(), uuid.uuid4()
    with pg_sandbox.connect(autocommit=True) as conn:
        conn.execute(TENANT_SCHEMA)
        _insert(conn, acme, 40)
    backup = physical.backup_run_physical(kind="full")
    with pg_sandbox.connect(autocommit=True) as conn:  # after the backup: only in the WAL
        _insert(conn, globex, 25)
        _insert(conn, acme, 5)

    result = drill.drill_run(force_wal_switch=True)

    assert result.status == "succeeded" and result.backup == backup
    assert result.checks_passed, result.checks
    assert result.checks["counts_match"] and result.checks["amcheck_ok"]
    assert result.checks["tables"] == 2  # loans and payments: the tables with tenant_id
    # 45 + 25 loans, and one payment per loan row present when each batch was paid.
    assert result.checks["rows"] == 70 + (40 + 25 + 45)
    assert 0 < result.rto_seconds < 120 and 0 <= result.rpo_seconds < 60
    assert result.rto_met() and result.rpo_met()
    assert result.reached_time is not None
    assert BackupRun.objects.get(pk=backup.pk).restore_tested
    assert glob.glob(f"{tempfile.gettempdir()}/metis-drill-*") == []  # torn down


def test_a_drills_restored_cluster_does_not_bring_back_an_erased_subject(db, pg_sandbox):
    tenant, erased, kept = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with pg_sandbox.connect(autocommit=True) as conn:
        # The columns of the application's documents table the ledger's statements use.
        conn.execute(
            "CREATE TABLE documents (id uuid PRIMARY KEY, tenant_id uuid NOT NULL, "
            "metadata jsonb, uploaded_by_id uuid, restore_requested_by_id uuid)"
        )
        conn.execute(
            "INSERT INTO documents (id, tenant_id) VALUES (%s, %s), (%s, %s)",
            [erased, tenant, kept, tenant],
        )
    physical.backup_run_physical(kind="full")  # the backup still holds the subject
    with pg_sandbox.connect(autocommit=True) as conn:  # the erasure, after the backup
        ledger.ledger_append(
            ErasurePlan(str(tenant), "borrower", "CUST-1", document_ids=[str(erased)]),
            request_id="drill-test",
        )
        conn.execute("DELETE FROM documents WHERE id = %s", [erased])

    result = drill.drill_run(force_wal_switch=True)

    assert result.status == "succeeded" and result.checks_passed, result.checks
    assert result.checks["erased_rows_left"] == {}
    assert result.checks["counts_match"]  # the subject erased, the rest all there
    assert result.checks["rows"] == 1


def test_drill_without_a_backup_is_recorded_as_failed(db, settings):
    settings.BACKUP_REPO_CIPHER_PASS = "any"
    settings.BACKUP_REPO_TYPE = "posix"

    with pytest.raises(RuntimeError, match="no successful physical backup"):
        drill.drill_run(force_wal_switch=True)
    failed = drill.RestoreDrill.objects.get()
    assert failed.status == "failed" and not failed.checks_passed
