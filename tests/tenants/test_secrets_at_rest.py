"""No bearer secret where one SQL injection could read it, nor in Redis.

An injection runs arbitrary SQL as the runtime role. So, after real sign-ins (a user of tenant B,
a staff member) and B's uploads and downloads, these tests read every column of every relation
the runtime role may SELECT (pg_catalog and information_schema included: pg_stat_activity shows
other connections' SQL), outside any tenant context and inside tenant A's, and look for B's and
staff's secrets in the text of every row. Lives here because sessions are most of it.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse

import pytest
from django.conf import settings
from django.core.cache import caches
from django.db import connections, transaction
from django.test import Client

from tenants import db
from tests.conftest import host_of
from tests.documents.conftest import pdf_bytes, uploaded
from tests.factories import TEST_PASSWORD
from tests.support import staff as staff_accounts


def readable_relations() -> list[str]:
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') "
            "AND has_table_privilege(c.oid, 'SELECT') ORDER BY 1"
        )
        return [name for (name,) in cursor.fetchall()]


def sweep(secrets: dict[str, str]) -> list[tuple[str, str]]:
    """Return (relation, secret name) for every secret found in any readable row's text."""
    # The rows come back to Python and are searched here: a query that names the secrets
    # would find itself in pg_stat_activity.
    found = []
    relations = readable_relations()
    assert "public.django_session" in relations and "pg_catalog.pg_stat_activity" in relations
    with connections["default"].cursor() as cursor:
        for relation in relations:
            with transaction.atomic():
                cursor.execute(f"SELECT t::text FROM {relation} AS t")
                text = "\n".join(row for (row,) in cursor.fetchall())
            found += [(relation, name) for name, value in secrets.items() if value in text]
    return found


def post_json(client: Client, path: str, body: dict) -> dict:
    response = client.post(path, json.dumps(body), content_type="application/json")
    assert response.status_code in (200, 201), response.content
    return response.json()


def signature_of(url: str) -> str:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["X-Amz-Signature"][0]


@pytest.fixture
def secrets(s3_bucket, tenant, other_tenant, other_tenant_user, staff_user) -> dict[str, str]:
    """B's and staff's bearer secrets, each obtained the way a browser would."""
    tenant_b = Client(HTTP_HOST=host_of(other_tenant))
    tenant_b.get("/login/")
    signed_in = tenant_b.post(
        "/login/", {"email": other_tenant_user.email, "password": TEST_PASSWORD}
    )
    assert signed_in.status_code == 302
    upload = tenant_b.post(
        "/documents/upload/",
        {"document_type": "bank-statement", "file": uploaded(pdf_bytes())},
    )
    assert upload.status_code == 302, upload.content
    download = tenant_b.get(f"{upload.url}download/")
    assert download.status_code == 302
    content = pdf_bytes(size=6 * 1024 * 1024)
    started = post_json(
        tenant_b,
        "/documents/multipart/start/",
        {
            "document_type": "bank-statement",
            "filename": "big.pdf",
            "size": len(content),
            "sha256": hashlib.sha256(content).hexdigest(),
            "content_type": "application/pdf",
        },
    )
    staff = Client(HTTP_HOST=settings.METIS_BASE_DOMAIN)
    staff.get("/admin/login/")
    app = staff_accounts.authenticator_app(staff_user)
    signed_in = staff_accounts.sign_in(staff, username="staffer", password=TEST_PASSWORD, app=app)
    assert signed_in.status_code == 302
    assert staff.get("/admin/").status_code == 200
    cookie = settings.SESSION_COOKIE_NAME
    return {
        "tenant B session cookie": tenant_b.cookies[cookie].value,
        "tenant B CSRF cookie": tenant_b.cookies[settings.CSRF_COOKIE_NAME].value,
        "staff session cookie": staff.cookies[cookie].value,
        "staff CSRF cookie": staff.cookies[settings.CSRF_COOKIE_NAME].value,
        "tenant B download URL signature": signature_of(download.url),
        "tenant B multipart ticket": started["ticket"],
        "tenant B multipart part URL signature": signature_of(started["parts"][0]["url"]),
        "S3 secret key": settings.AWS_SECRET_ACCESS_KEY,
        "S3 access key id": settings.AWS_ACCESS_KEY_ID,
        "Django SECRET_KEY": settings.SECRET_KEY,
    }


def test_the_sweep_finds_what_the_runtime_role_can_read(secrets, staff_user):
    # Without this, an empty result could mean a sweep that reads nothing.
    assert ("public.auth_user", "staff email") in sweep({"staff email": staff_user.email})


def test_no_bearer_secret_is_readable_outside_any_tenant_context(secrets):
    assert sweep(secrets) == []


def test_no_bearer_secret_is_readable_inside_another_tenants_context(secrets, tenant):
    with db.tenant_context(tenant.pk):
        assert sweep(secrets) == []


@pytest.mark.redis
def test_no_session_cookie_appears_in_any_redis_key(secrets):
    if not settings.REDIS_URL:
        pytest.skip("needs Redis (REDIS_URL)")
    from django_redis import get_redis_connection

    keys = [
        key.decode(errors="replace")
        for key in get_redis_connection("sessions").scan_iter(count=1000)
    ]
    sessions_prefix = caches["sessions"].make_key("")
    assert any(key.startswith(sessions_prefix) for key in keys)  # the sessions' database
    assert [(name, key) for key in keys for name, value in secrets.items() if value in key] == []
