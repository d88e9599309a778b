"""The read replica (tenants/replica.py, tenants/replica_router.py) against a real streaming
standby: a primary made with initdb and a `pg_basebackup -R` standby
(tests/support/replica_pair.py).
"""

from __future__ import annotations

import json
import time
import uuid

import psycopg
import pytest
from celery import shared_task
from django.contrib.auth import get_user_model
from django.db import connections
from django.http import JsonResponse
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from monitoring import figures
from monitoring.alerts import rules
from tenants import db, replica
from tenants.middleware import ReadYourWritesMiddleware
from tenants.models import Tenant, TenantUser
from tests.factories import TEST_PASSWORD, TenantFactory, TenantUserFactory
from tests.monitoring.conftest import figure
from tests.support import replica_pair, staff
from tests.support.ports import free_port


def _tenant_with_user(name: str = "acme") -> tuple[Tenant, TenantUser]:
    tenant = TenantFactory(name=name, subdomain=f"{name}-{uuid.uuid4().hex[:8]}")
    user = TenantUserFactory(tenant=tenant, email=f"{uuid.uuid4().hex[:8]}@{name}.example")
    return tenant, user


def _in_recovery(alias: str) -> bool:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery()")
        return cursor.fetchone()[0]


@pytest.fixture
def replay_paused(on_replica_pair):
    """Pause the standby's replay (it keeps receiving WAL); resume it afterwards.

    A commit is replayed first: with WAL waiting and no commit replayed since the standby
    started, its lag is unknown (infinite) and every read would go to the primary anyway.
    """
    TenantFactory(subdomain=f"replayed-{uuid.uuid4().hex[:8]}")
    replica_pair.wait_replayed(on_replica_pair.primary, on_replica_pair.standby)
    with on_replica_pair.standby.admin(autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
        try:
            yield
        finally:
            conn.execute("SELECT pg_wal_replay_resume()")


@pytest.mark.parametrize(
    ("sql", "writes"),
    [
        ('SELECT "users"."id" FROM "users"', False),
        ("  (SELECT 1) UNION (SELECT 2)", False),
        ('SAVEPOINT "s1"', False),
        ('INSERT INTO "users" ("email") VALUES (%s)', True),
        ('UPDATE "users" SET "name" = %s', True),
        ('DELETE FROM "users"', True),
        ("WITH moved AS (DELETE FROM outbox RETURNING *) SELECT count(*) FROM moved", True),
    ],
)
def test_what_counts_as_a_write(sql, writes):
    assert replica.is_write(sql) is writes


def test_without_a_replica_every_read_stays_on_the_primary(tenant):
    assert not replica.configured()
    with db.tenant_context(tenant.pk), replica.replica_reads():
        assert replica.read_alias() is None
        assert Tenant.objects.filter(pk=tenant.pk).db == "default"
        assert Tenant.objects.filter(pk=tenant.pk).exists()
    assert figures.replica_lag_seconds() is None
    assert rules.db_replica_lag(timezone.now()) == []


def test_an_unreachable_replica_is_bypassed_and_alerted(on_replica_pair, settings):
    settings.DATABASES[replica.REPLICA_ALIAS]["PORT"] = str(free_port())  # nothing listens
    connections[replica.REPLICA_ALIAS].close_pool()
    replica.lag_cache_clear()
    assert replica.replica_lag_seconds() == float("inf")
    with replica.replica_reads():
        assert Tenant.objects.all().db == "default"
    [finding] = rules.db_replica_lag(timezone.now())
    assert "cannot be reached" in finding.message


def test_replica_reads_come_from_the_standby(on_replica_pair):
    tenant, user = _tenant_with_user()
    replica_pair.wait_replayed(on_replica_pair.primary, on_replica_pair.standby)
    with db.tenant_context(tenant.pk, atomic=False), replica.replica_reads():
        users = TenantUser.objects.filter(pk=user.pk)
        assert users.db == replica.REPLICA_ALIAS
        with CaptureQueriesContext(connections[replica.REPLICA_ALIAS]) as on_replica:
            assert list(users.values_list("email", flat=True)) == [user.email]
        assert any('"users"' in query["sql"] for query in on_replica.captured_queries)
        assert _in_recovery(users.db) is True
    # Outside the block, the same read is the primary's.
    with db.tenant_context(tenant.pk, atomic=False):
        assert TenantUser.objects.filter(pk=user.pk).db == "default"
        assert _in_recovery("default") is False


def test_replica_enforces_tenant_isolation(on_replica_pair):
    tenant, user = _tenant_with_user("acme")
    other, _ = _tenant_with_user("globex")
    replica_pair.wait_replayed(on_replica_pair.primary, on_replica_pair.standby)
    with db.tenant_context(tenant.pk, atomic=False), replica.replica_reads():
        users = TenantUser.objects.all()
        assert users.db == replica.REPLICA_ALIAS
        assert list(users.values_list("pk", flat=True)) == [user.pk]
        assert not TenantUser.objects.filter(tenant_id=other.pk).exists()
        with connections[replica.REPLICA_ALIAS].cursor() as cursor:
            cursor.execute("SELECT count(*) FROM users WHERE tenant_id = %s", [other.pk])
            assert cursor.fetchone()[0] == 0
            cursor.execute("SELECT pg_is_in_recovery()")
            assert cursor.fetchone()[0] is True


def test_replica_refuses_a_forged_or_replayed_seal(on_replica_pair):
    """The attack: SQL as the runtime role on the replica naming another tenant."""
    _tenant_with_user("acme")
    other, _ = _tenant_with_user("globex")
    # A genuine seal of the other tenant, taken from one of the application's transactions.
    with db.tenant_context(other.pk), connections["default"].cursor() as cursor:
        cursor.execute("SELECT current_setting('app.tenant_seal')")
        genuine = cursor.fetchone()[0]
    replica_pair.wait_replayed(on_replica_pair.primary, on_replica_pair.standby)
    with psycopg.connect(on_replica_pair.standby.app_url()) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
        assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 0  # no seal: no rows
        conn.execute("SELECT set_config('app.current_tenant', %s, true)", [str(other.pk)])
        assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 0  # the old setting
        for seal in (genuine, f"{other.pk}.{'0' * 64}"):
            conn.rollback()
            conn.execute("SELECT set_config('app.tenant_seal', %s, true)", [seal])
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="seal refused"):
                conn.execute("SELECT count(*) FROM users")


def test_a_lagging_replica_is_bypassed(on_replica_pair, replay_paused, settings):
    settings.REPLICA_MAX_LAG_SECONDS = 1
    settings.ALERT_DB_REPLICA_LAG_SECONDS = 1
    settings.REPLICA_LAG_CHECK_SECONDS = 0
    tenant, _ = _tenant_with_user()
    # Received by the standby but not replayed: the lag grows from the last replayed commit.
    written = TenantUserFactory(tenant=tenant, email="late@acme.example")
    time.sleep(1.5)
    assert replica.replica_lag_seconds() > 1
    # The metric and the alert rule see it too.
    assert figure("metis_db_replica_lag_seconds") > 1
    [finding] = rules.db_replica_lag(timezone.now())
    assert finding.value > 1 and finding.threshold == 1
    with db.tenant_context(tenant.pk, atomic=False), replica.replica_reads():
        users = TenantUser.objects.filter(pk=written.pk)
        assert users.db == "default"
        assert users.exists()
    # Caught up again, the replica is used again.
    with on_replica_pair.standby.admin(autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_resume()")
    replica_pair.wait_replayed(on_replica_pair.primary, on_replica_pair.standby)
    assert replica.replica_lag_seconds() == 0
    assert figure("metis_db_replica_lag_seconds") == 0
    assert rules.db_replica_lag(timezone.now()) == []
    with db.tenant_context(tenant.pk, atomic=False), replica.replica_reads():
        assert TenantUser.objects.filter(pk=written.pk).db == replica.REPLICA_ALIAS


def _write_then_read(tenant: Tenant):
    def view(request):
        with db.tenant_context(tenant.pk, atomic=False):
            with replica.replica_reads():
                before = TenantUser.objects.all().db
            if request.GET.get("write"):
                TenantUserFactory(tenant=tenant, email="new@acme.example")
            with replica.replica_reads():
                users = TenantUser.objects.filter(email="new@acme.example")
                return JsonResponse({"before": before, "after": users.db, "seen": users.exists()})

    return ReadYourWritesMiddleware(view)


def test_a_request_that_wrote_reads_its_write(on_replica_pair, replay_paused, settings):
    settings.REPLICA_MAX_LAG_SECONDS = 3600  # lag is not the reason here
    tenant, _ = _tenant_with_user()
    handler = _write_then_read(tenant)
    wrote = json.loads(handler(RequestFactory().get("/", {"write": "1"})).content)
    assert wrote == {"before": replica.REPLICA_ALIAS, "after": "default", "seen": True}
    # The next request wrote nothing: it reads the replica, which has not replayed the write.
    # So the first request saw its write because it read the primary, not by luck.
    read_only = json.loads(handler(RequestFactory().get("/")).content)
    assert read_only == {
        "before": replica.REPLICA_ALIAS,
        "after": replica.REPLICA_ALIAS,
        "seen": False,
    }


@shared_task(name="tests.replica.write_then_read")
def _write_then_read_task(*, tenant_id: str, write: bool) -> dict:
    with db.tenant_context(tenant_id, atomic=False):
        if write:
            TenantUserFactory(tenant=Tenant.objects.get(pk=tenant_id), email="task@acme.example")
        with replica.replica_reads():
            users = TenantUser.objects.filter(email="task@acme.example")
            return {"db": users.db, "seen": users.exists()}


def test_a_task_that_wrote_reads_its_write(on_replica_pair, replay_paused, settings):
    settings.REPLICA_MAX_LAG_SECONDS = 3600
    tenant, _ = _tenant_with_user()
    wrote = _write_then_read_task.apply(kwargs={"tenant_id": str(tenant.pk), "write": True})
    assert wrote.get() == {"db": "default", "seen": True}
    read_only = _write_then_read_task.apply(kwargs={"tenant_id": str(tenant.pk), "write": False})
    assert read_only.get() == {"db": replica.REPLICA_ALIAS, "seen": False}


def test_staff_change_list_and_dashboard_are_read_from_the_replica(on_replica_pair):
    tenant, _ = _tenant_with_user()
    staff_user = get_user_model().objects.create_user(
        f"staff-{uuid.uuid4().hex[:8]}",
        "s@metis.example",
        TEST_PASSWORD,
        is_staff=True,
        is_superuser=True,
    )
    client = Client(HTTP_HOST="localhost")
    client.force_login(staff_user)
    staff.mark_verified(client, staff_user)
    replica_pair.wait_replayed(on_replica_pair.primary, on_replica_pair.standby)
    with CaptureQueriesContext(connections[replica.REPLICA_ALIAS]) as on_replica:
        response = client.get("/admin/tenants/tenant/")
    assert response.status_code == 200
    assert tenant.name.encode() in response.content
    assert any('FROM "tenants"' in query["sql"] for query in on_replica.captured_queries)
    # The backups dashboard's catalog reads too.
    with CaptureQueriesContext(connections[replica.REPLICA_ALIAS]) as on_replica:
        response = client.get("/admin/backups/backuprun/dashboard/")
    assert response.status_code == 200
    assert any("backups_restoredrill" in query["sql"] for query in on_replica.captured_queries)


def test_parquet_export_reads_the_replica(on_replica_pair, s3_bucket):
    from analytics import exports

    _tenant_with_user()
    replica_pair.wait_replayed(on_replica_pair.primary, on_replica_pair.standby)
    run = exports.export_run()
    assert run.database == replica.REPLICA_STAFF_READ_ALIAS
    assert run.tables["tenants"]["rows"] >= 1
    assert _in_recovery(run.database) is True
