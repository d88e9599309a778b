"""The read replica (tenants/replica.py, tenants/replica_router.py) against a real streaming
standby: a primary made with initdb and a `pg_basebackup -R` standby (tests/support/replica_pair.py).
"""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.db import connections
from django.http import JsonResponse
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext

from tenants import db, replica
from tenants.middleware import ReadYourWritesMiddleware
from tenants.models import Tenant, TenantUser
from tests.factories import TEST_PASSWORD, TenantFactory, TenantUserFactory
from tests.support import replica_pair, staff


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
    """Pause the standby's replay (it keeps receiving WAL); resume it afterwards."""
    with on_replica_pair.standby.admin(autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
        try:
            yield
        finally:
            conn.execute("SELECT pg_wal_replay_resume()")


def test_without_a_replica_every_read_stays_on_the_primary(tenant):
    assert not replica.configured()
    with db.tenant_context(tenant.pk), replica.replica_reads():
        assert replica.read_alias() is None
        assert Tenant.objects.filter(pk=tenant.pk).db == "default"
        assert Tenant.objects.filter(pk=tenant.pk).exists()


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
