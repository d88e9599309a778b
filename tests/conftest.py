"""Test fixtures: a real PostgreSQL test database, migrated by the owner role, used as the app role.

The test database is created through DATABASE_ADMIN_URL, given to the owner role, migrated as the
owner, and every test then talks to it as the runtime role that RLS binds, as production does.
"""

from __future__ import annotations

import os
import uuid

import pytest
from django.conf import settings
from django.db import connections
from django.test import Client

from documents.s3server import SeaweedS3
from tenants import scratch
from tests.factories import TEST_PASSWORD, TenantFactory, TenantUserFactory


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
    yield
    with django_db_blocker.unblock():
        scratch.scratch_database_drop(name)


# Rows migrate creates and every test relies on: kept when committed data is wiped.
_KEEP_TABLES = {"django_migrations", "django_content_type", "auth_permission"}


@pytest.fixture
def committed_db(django_db_setup, django_db_blocker):
    """Commit for real, so other connections (threads, workers, PgBouncer) see the rows.

    Afterwards the owner role empties the tables: the app role may not TRUNCATE, by design.
    """
    with django_db_blocker.unblock():
        yield
        scratch.close_all_connections()
        owner = connections["owner"]
        tables = set(owner.introspection.django_table_names(only_existing=True)) - _KEEP_TABLES
        with owner.cursor() as cursor:
            cursor.execute(
                "TRUNCATE "
                + ", ".join(owner.ops.quote_name(t) for t in sorted(tables))
                + " CASCADE"
            )
        owner.close()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Hashing cost is not under test; MD5 keeps sign-in tests quick.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def tenant(db):
    return TenantFactory(name="Acme Lending", subdomain="acme")


@pytest.fixture
def other_tenant(db):
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
def staff_user(db, django_user_model):
    return django_user_model.objects.create_user(
        "staffer", "staffer@metis.example", TEST_PASSWORD, is_staff=True, is_superuser=True
    )


@pytest.fixture
def staff_client(staff_user):
    client = Client(HTTP_HOST=settings.METIS_BASE_DOMAIN)
    client.force_login(staff_user)
    return client


@pytest.fixture(scope="session")
def s3_server():
    """A private SeaweedFS S3 server (auth on), one per test session (per xdist worker)."""
    server = SeaweedS3().start()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server, settings):
    """A fresh bucket on the real S3 server, configured as the object storage for this test."""
    bucket = f"metis-test-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=bucket)
    settings.AWS_STORAGE_BUCKET_NAME = bucket
    settings.AWS_S3_ENDPOINT_URL = s3_server.endpoint_url
    settings.AWS_ACCESS_KEY_ID = s3_server.access_key
    settings.AWS_SECRET_ACCESS_KEY = s3_server.secret_key
    options = {
        "bucket_name": bucket,
        "endpoint_url": s3_server.endpoint_url,
        "region_name": "us-east-1",
        "access_key": s3_server.access_key,
        "secret_key": s3_server.secret_key,
        "addressing_style": "path",
        "signature_version": "s3v4",
        "object_parameters": {"ServerSideEncryption": "AES256"},
        "default_acl": None,
        "file_overwrite": False,
        "querystring_expire": settings.PRESIGNED_URL_EXPIRES,
    }
    # Assigning STORAGES fires setting_changed, which resets Django's storage handler.
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options},
    }
    return bucket


@pytest.fixture
def local_object_storage(tmp_path, settings):
    """The embedded default: local files under a private directory, same key layout."""
    settings.AWS_STORAGE_BUCKET_NAME = ""
    settings.OBJECT_STORAGE_LOCAL_ROOT = tmp_path / "objects"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path / "objects", "allow_overwrite": False},
        },
    }
    return tmp_path / "objects"
