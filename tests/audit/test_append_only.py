"""The audit log is append-only: grants refuse the runtime role, triggers refuse everyone."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connections, transaction

from tenants import db
from tests.audit.conftest import entries, owner_execute, record_some

ATTACKS = (
    "UPDATE audit_log SET action = 'nothing.happened'",
    "DELETE FROM audit_log",
    "TRUNCATE audit_log",
    "TRUNCATE audit_log_default",
    "UPDATE audit_chain_heads SET seq = 0",
)


@pytest.mark.django_db
@pytest.mark.parametrize("statement", ATTACKS)
def test_the_runtime_role_cannot_change_the_log(tenant, statement):
    record_some(tenant, 2)
    before = entries(tenant)
    # As an injection would: raw SQL, inside the tenant's own sealed transaction.
    with (
        db.tenant_context(tenant.pk),
        pytest.raises(DatabaseError, match="permission denied"),
        transaction.atomic(),
        connections["default"].cursor() as cursor,
    ):
        cursor.execute(statement)
    assert entries(tenant) == before


@pytest.mark.committed
@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log", "TRUNCATE audit_log"],
)
def test_the_triggers_refuse_even_the_owner(tenant, statement):
    record_some(tenant, 1)
    before = entries(tenant)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(using="owner"):
        owner_execute(statement)
    assert entries(tenant) == before


@pytest.mark.committed
def test_a_new_partition_is_guarded_and_reachable_only_through_the_log(tenant):
    record_some(tenant, 1)
    with connections["owner"].cursor() as cursor:
        cursor.execute("SELECT metis_audit_partition_ensure((now() + interval '1 month')::date)")
        (partition,) = cursor.fetchone()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(using="owner"):
        owner_execute(f"TRUNCATE {partition}")
    with (
        db.tenant_context(tenant.pk),
        pytest.raises(DatabaseError, match="permission denied"),
        transaction.atomic(),
        connections["default"].cursor() as cursor,
    ):
        cursor.execute(f"SELECT * FROM {partition}")


@pytest.mark.django_db
def test_the_database_sets_the_time_and_the_chain(tenant):
    with db.tenant_context(tenant.pk):
        with (
            pytest.raises(DatabaseError, match="set by the database"),
            transaction.atomic(),
            connections["default"].cursor() as cursor,
        ):
            cursor.execute(
                "INSERT INTO audit_log (tenant_id, action, created_at) "
                "VALUES (%s, 'backdated', now() - interval '1 day')",
                [tenant.pk],
            )
        with connections["default"].cursor() as cursor:
            cursor.execute(
                "INSERT INTO audit_log (tenant_id, action, seq, hash) "
                "VALUES (%s, 'forged', 99, repeat('f', 64)) RETURNING seq, hash",
                [tenant.pk],
            )
            seq, digest = cursor.fetchone()
    assert seq == len(entries(tenant)) and digest != "f" * 64


@pytest.mark.django_db
def test_a_tenant_reads_only_its_own_rows(tenant, other_tenant):
    record_some(tenant, 3)
    record_some(other_tenant, 2)
    with db.tenant_context(other_tenant.pk), connections["default"].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM audit_log WHERE tenant_id = %s", [tenant.pk])
        assert cursor.fetchone() == (0,)
        cursor.execute("SELECT count(*) FROM audit_log")
        assert cursor.fetchone() == (2 + _rows_of_writes(other_tenant),)
        # Nor may it write into the first tenant's chain.
        with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
            cursor.execute(
                "INSERT INTO audit_log (tenant_id, action) VALUES (%s, 'x')", [tenant.pk]
            )


def _rows_of_writes(tenant) -> int:
    """Rows the database wrote for the tenant's own creation (the tenants row)."""
    return sum(1 for row in entries(tenant) if row[0] != "test.read")


@pytest.mark.django_db
def test_the_chain_links_each_row_to_the_one_before(tenant):
    first, second = record_some(tenant, 2)
    assert second.seq == first.seq + 1
    with db.tenant_context(tenant.pk), connections["default"].cursor() as cursor:
        cursor.execute("SELECT prev_hash FROM audit_log WHERE id = %s", [second.id])
        assert cursor.fetchone()[0] == first.hash
