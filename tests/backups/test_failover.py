"""manage.py failover_drill on a real primary and standby (backups/services/failover.py).

The pair is the test's own, cloned from the session's migrated primary: the drill stops its
primary for good.
"""

from __future__ import annotations

import io
import uuid

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connections
from django.test import Client

from backups.models import FailoverDrill, FailoverDrillMarker, JobStatus
from tests.factories import TEST_PASSWORD, TenantFactory, TenantUserFactory
from tests.support import replica_pair, staff


@pytest.fixture
def failover_pair(migrated_primary, django_db_blocker):
    """A primary of its own with a synchronous standby; both destroyed afterwards."""
    with django_db_blocker.unblock():
        primary = replica_pair.primary_clone(migrated_primary)
        try:
            standby = replica_pair.standby_create(primary)
        except BaseException:
            primary.destroy()
            raise
    yield replica_pair.Pair(primary, standby)
    standby.destroy()
    primary.destroy()


def test_failover_drill_promotes_the_standby_within_rto_and_loses_nothing(
    failover_pair, django_db_blocker
):
    primary, standby = failover_pair.primary, failover_pair.standby
    with django_db_blocker.unblock(), replica_pair.aliases_pointed(primary):
        tenant = TenantFactory(name="Acme Lending", subdomain=f"acme-{uuid.uuid4().hex[:8]}")
        user = TenantUserFactory(tenant=tenant, email="alice@acme.example")
        staff_user = get_user_model().objects.create_user(
            "staffer", "staffer@metis.example", TEST_PASSWORD, is_staff=True, is_superuser=True
        )
        out = io.StringIO()
        call_command(
            "failover_drill",
            primary_data_dir=str(primary.target.data_dir),
            standby_data_dir=str(standby.target.data_dir),
            standby_url=standby.app_url(),
            pg_bin_dir=str(replica_pair.BIN_DIR),
            os_user=primary.target.os_user,
            tenant=tenant.subdomain,
            stdout=out,
            stderr=io.StringIO(),
        )

        # The application now talks to the promoted standby, which accepts writes.
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT pg_is_in_recovery(), inet_server_port()")
            assert cursor.fetchone() == (False, standby.port)
        with pytest.raises(psycopg.OperationalError):
            primary.admin(connect_timeout=2).close()

        # Stored there, with both targets met.
        drill = FailoverDrill.objects.get()
        assert drill.status == JobStatus.SUCCEEDED
        assert drill.rto_seconds is not None and 0 < drill.rto_seconds <= 10
        assert drill.markers_acknowledged >= 50  # the writer was committing when the stop came
        assert drill.markers_found == drill.markers_acknowledged
        assert drill.rpo_transactions_lost == 0
        assert drill.synchronous_commit == "remote_apply"
        assert drill.steps["standby_promoted"] < drill.steps["tenant_page_served"]
        assert not FailoverDrillMarker.objects.exists()
        assert f"RTO {drill.rto_seconds:.2f}s" in out.getvalue()
        assert "RPO 0 committed transactions lost" in out.getvalue()

        # A tenant user signs in and reads their page on the promoted server.
        client = Client(HTTP_HOST=f"{tenant.subdomain}.localhost")
        response = client.post("/login/", {"email": user.email, "password": TEST_PASSWORD})
        assert response.status_code == 302, response.content
        assert client.get("/").status_code == 200

        # Staff find it in the admin beside the restore drills.
        staff_client = Client(HTTP_HOST="localhost")
        staff_client.force_login(staff_user)
        staff.mark_verified(staff_client, staff_user)
        for url in ("/admin/backups/failoverdrill/", "/admin/backups/backuprun/dashboard/"):
            page = staff_client.get(url)
            assert page.status_code == 200
            assert drill.standby_server.encode() in page.content
