"""Test fixtures: a real PostgreSQL test database, migrated by the owner role, used as the app role.

The test database is created through DATABASE_ADMIN_URL, given to the owner role, migrated as the
owner, and every test then talks to it as the runtime role that RLS binds, as production does.
"""

from __future__ import annotations

import contextlib
import copy
import os
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections
from django.test import Client

from metis.objectstore.errors import STORE_ERRORS
from tests.factories import TEST_PASSWORD, TenantFactory, TenantUserFactory
from tests.support import browser as support_browser
from tests.support import replica_pair, scratch, staff
from tests.support.seaweedfs import SeaweedS3


def _test_database_name() -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    prefix = os.environ.get("METIS_TEST_DB_PREFIX", "test_metis")
    return f"{prefix}_{worker}" if worker else prefix


@pytest.fixture(scope="session")
def django_db_setup(django_test_environment, django_db_blocker):
    if not settings.DATABASE_ADMIN_URL:
        pytest.exit("DATABASE_ADMIN_URL is needed to create the test database (see README)")
    name = _test_database_name()
    with django_db_blocker.unblock():
        scratch.scratch_database_create(name)
        _KEEP_TABLES.update(_tables_migrate_filled(connections["owner"]))
    yield
    with django_db_blocker.unblock():
        scratch.scratch_database_drop(name)


# Rows migrate creates and every test relies on (content types, beat schedules, the retention
# policy): kept when committed data is wiped. Filled in by django_db_setup.
_KEEP_TABLES: set[str] = set()


def _tables_migrate_filled(connection) -> set[str]:
    """The tables migrate put rows in, and the tables they reference (TRUNCATE ... CASCADE of a
    referenced table would empty the referencing one too)."""
    filled = set()
    with connection.cursor() as cursor:
        for table in connection.introspection.django_table_names(only_existing=True):
            cursor.execute(f"SELECT EXISTS (SELECT FROM {connection.ops.quote_name(table)})")
            if cursor.fetchone()[0]:
                filled.add(table)
        cursor.execute(
            "SELECT conrelid::regclass::text, confrelid::regclass::text "
            "FROM pg_constraint WHERE contype = 'f'"
        )
        references = cursor.fetchall()
    while True:
        referenced = {target for source, target in references if source in filled} - filled
        if not referenced:
            return filled
        filled |= referenced


@pytest.fixture
def committed_db(django_db_setup, django_db_blocker):
    """Commit for real, so other connections (threads, workers, PgBouncer) see the rows.

    Afterwards the owner role empties the tables: the app role may not TRUNCATE, by design.
    """
    with django_db_blocker.unblock():
        yield
        scratch.close_all_connections()
        owner = connections["owner"]
        tables = {
            table
            for table in owner.introspection.django_table_names(only_existing=True)
            if table not in _KEEP_TABLES
        }
        with owner.cursor() as cursor:
            cursor.execute(
                "TRUNCATE "
                + ", ".join(owner.ops.quote_name(t) for t in sorted(tables))
                + " CASCADE"
            )
        owner.close()


@pytest.fixture
def committed_live_server(committed_db, request):
    """pytest-django's live_server over really committed rows.

    Asked for by name, live_server makes the test transactional, and that flush is a TRUNCATE
    the RLS-bound app role may not run; fetched here instead, committed_db's owner cleans up.
    """
    server = request.getfixturevalue("live_server")
    server._live_server_modified_settings.enable()
    yield server
    server._live_server_modified_settings.disable()


@pytest.fixture
def browser(monkeypatch):
    """Debian's chromium, headless, through Playwright (tests/support/browser.py)."""
    # Playwright's sync API runs an event loop in this thread; our database calls here stay
    # synchronous, so Django's async-safety guard does not apply.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(support_browser.CHROMIUM).exists():
        pytest.skip(
            f"needs Debian's chromium at {support_browser.CHROMIUM} (apt-get install chromium)"
        )
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=support_browser.CHROMIUM,
            headless=True,
            args=support_browser.CHROMIUM_ARGS,
        )
        yield browser
        browser.close()


@pytest.fixture(autouse=True)
def _no_pending_objects_across_tests():
    """A test that uploads outside a request leaves its to-purge list on the thread's connection
    (in a request the middleware sweeps it); a later test's request must not sweep it."""
    yield
    from documents import consistency

    for alias in connections:
        connections[alias].__dict__.pop(consistency.PENDING_ATTRIBUTE, None)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Hashing cost is not under test; MD5 keeps sign-in tests quick.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _own_sign_in_throttle(settings):
    """Each test counts sign-in failures under its own key prefix: tests run side by side on one
    Redis, all from 127.0.0.1, and one test's lockouts must not refuse another's sign-ins."""
    caches = copy.deepcopy(settings.CACHES)
    caches["throttle"]["KEY_PREFIX"] = f"test-{uuid.uuid4().hex}"
    # The same for the host → tenant lookups: every test's "acme" is another tenant row.
    caches["tenants"]["KEY_PREFIX"] = f"test-{uuid.uuid4().hex}"
    settings.CACHES = caches


@pytest.fixture
def tenant_db(request):
    """`db`, or `committed_db` for a test marked `committed` (e.g. one whose code reads through
    the staff read role's own connection, which never sees an uncommitted test transaction)."""
    if request.node.get_closest_marker("committed"):
        request.getfixturevalue("committed_db")
    else:
        request.getfixturevalue("db")


@pytest.fixture
def tenant(tenant_db):
    return TenantFactory(name="Acme Lending", subdomain="acme")


@pytest.fixture
def other_tenant(tenant_db):
    return TenantFactory(name="Globex Finance", subdomain="globex")


@pytest.fixture
def tenant_user(tenant):
    return TenantUserFactory(tenant=tenant, email="alice@acme.example", name="Alice Acme")


@pytest.fixture
def other_tenant_user(other_tenant):
    return TenantUserFactory(tenant=other_tenant, email="gina@globex.example", name="Gina Globex")


def host_of(tenant) -> str:
    return f"{tenant.subdomain}.{settings.METIS_BASE_DOMAIN}"


@pytest.fixture
def tenant_client(tenant, tenant_user):
    """A client signed in as `tenant_user` on the tenant's host."""
    client = Client(HTTP_HOST=host_of(tenant))
    response = client.post("/login/", {"email": tenant_user.email, "password": TEST_PASSWORD})
    assert response.status_code == 302, response.content
    return client


@pytest.fixture
def staff_user_model(tenant_db):
    """The staff user model, on `tenant_db` (pytest-django's django_user_model requires `db`)."""
    from django.contrib.auth import get_user_model

    return get_user_model()


@pytest.fixture
def staff_user(staff_user_model):
    return staff_user_model.objects.create_user(
        "staffer", "staffer@metis.example", TEST_PASSWORD, is_staff=True, is_superuser=True
    )


@pytest.fixture
def staff_client(staff_user):
    """A client signed in as `staff_user`, second factor passed just now."""
    client = Client(HTTP_HOST=settings.METIS_BASE_DOMAIN)
    client.force_login(staff_user)
    staff.mark_verified(client, staff_user)
    return client


@pytest.fixture(scope="session")
def s3_server():
    """A private SeaweedFS S3 server (auth on), one per test session (per xdist worker)."""
    server = SeaweedS3().start()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server, settings):
    """A fresh bucket on the real S3 server, the object storage for this test."""
    bucket = f"metis-test-{uuid.uuid4().hex[:12]}"
    client = s3_server.client()
    client.create_bucket(Bucket=bucket)
    point_storage_at(settings, s3_server, bucket)
    yield bucket
    # SeaweedFS gives each bucket volumes of its own: drop the bucket, or a session runs out.
    with contextlib.suppress(*STORE_ERRORS):
        bucket_delete(client, bucket)


def bucket_delete(client, bucket: str) -> None:
    """Delete every version, delete marker and unfinished upload, then the bucket itself."""
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
            client.delete_object(Bucket=bucket, Key=entry["Key"], VersionId=entry["VersionId"])
    for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    client.delete_bucket(Bucket=bucket)


def point_storage_at(settings, server, bucket: str) -> None:
    """Make `bucket` on `server` the object storage (the room reads these settings)."""
    settings.AWS_STORAGE_BUCKET_NAME = bucket
    settings.AWS_S3_ENDPOINT_URL = server.endpoint_url
    settings.AWS_ACCESS_KEY_ID = server.access_key
    settings.AWS_SECRET_ACCESS_KEY = server.secret_key
    settings.AWS_S3_REGION_NAME = "us-east-1"
    settings.AWS_S3_ADDRESSING_STYLE = "path"
    settings.AWS_S3_SSE = "AES256"
    # Assigning STORAGES fires setting_changed, so Django's default storage is built anew.
    settings.STORAGES = {**settings.STORAGES}


@pytest.fixture(scope="session")
def migrated_primary(django_db_blocker):
    """A private primary (initdb, 127.0.0.1) with the roles and a migrated `metis` database, one
    per session; pairs are cloned from it (tests/support/replica_pair.py)."""
    if not (replica_pair.BIN_DIR / "initdb").exists():
        pytest.skip(f"needs PostgreSQL's server binaries in {replica_pair.BIN_DIR}")
    with django_db_blocker.unblock():
        server = replica_pair.primary_create()
        try:
            replica_pair.database_migrate(server)
        except BaseException:
            server.destroy()
            raise
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def replica_standby(migrated_primary, django_db_blocker):
    """A `pg_basebackup -R` standby of the session's primary, streaming synchronously."""
    with django_db_blocker.unblock():
        standby = replica_pair.standby_create(migrated_primary)
    yield standby
    standby.destroy()


@pytest.fixture
def on_replica_pair(migrated_primary, replica_standby, django_db_blocker):
    """The application on the session's pair: the primary aliases on the primary, `replica` and
    `replica_staff_read` on the standby; rows commit for real (the pair is the session's)."""
    with (
        django_db_blocker.unblock(),
        replica_pair.aliases_pointed(migrated_primary, replica_standby),
    ):
        yield replica_pair.Pair(migrated_primary, replica_standby)
