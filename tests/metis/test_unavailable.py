"""Outages answer 503 with Retry-After and a message, in the host's style; Redis loss degrades.

Against real servers: the test database's pool held to exhaustion, a PostgreSQL port with
nothing behind it, a private Redis the tests stop and start (the sign-in throttle's and the
sessions' caches on it).
"""

from __future__ import annotations

import time
import uuid

import pytest
from django.conf import settings as django_settings
from django.db import connection, connections
from django.test import Client

from tests.conftest import host_of
from tests.factories import TEST_PASSWORD, TenantFactory, TenantUserFactory
from tests.support import scratch, services
from tests.support.ports import free_port


@pytest.fixture
def small_pool(committed_db, settings):
    """The production pool's options with one connection and a 1 s wait."""
    options = settings.DATABASES["default"]["OPTIONS"]
    saved = options.get("pool")
    scratch.close_all_connections()
    options["pool"] = {**(saved or {}), "min_size": 1, "max_size": 1, "timeout": 1}
    yield connections["default"]
    scratch.close_all_connections()
    options["pool"] = saved


@pytest.fixture
def acme(committed_db):
    tenant = TenantFactory(subdomain="acme", name="Acme Lending")
    TenantUserFactory(tenant=tenant, email="alice@acme.example")
    connection.close()  # back to the pool: the request checks its own out
    return tenant


def assert_unavailable_page(response, *, style: str, retry_after: str = "30"):
    assert response.status_code == 503
    assert response["Retry-After"] == retry_after
    body = response.content.decode()
    assert "Temporarily unavailable" in body
    assert "seconds" in body
    assert style in body  # the host's stylesheet
    assert "Server Error" not in body


def test_pool_exhausted_is_a_503_at_once_not_after_a_long_wait(small_pool, acme):
    pool = small_pool.pool
    pool.open()
    held = pool.getconn()  # the only connection, busy elsewhere
    try:
        client = Client(raise_request_exception=False)
        started = time.monotonic()
        page = client.get("/login/", HTTP_HOST=host_of(acme))
        api = client.post(
            "/documents/multipart/start/",
            data="{}",
            content_type="application/json",
            HTTP_HOST=host_of(acme),
        )
        took = time.monotonic() - started
    finally:
        pool.putconn(held)
    assert_unavailable_page(page, style="tenants/tenants.css", retry_after="5")
    assert "more requests than we can serve" in page.content.decode()
    assert api.status_code == 503 and api["Retry-After"] == "5"
    assert api.json()["retry_after"] == 5 and "try again" in api.json()["error"]
    assert 2 <= took < 4  # two requests, each refused after the pool's 1 s: busy waits
    # And the pool serves again once the connection is back.
    assert Client().get("/login/", HTTP_HOST=host_of(acme)).status_code == 200


@pytest.fixture
def database_gone(settings, django_db_blocker):
    """The default alias pointed at a port where no PostgreSQL listens."""
    with django_db_blocker.unblock(), services.database_settings_kept():
        scratch.close_all_connections()
        settings.DATABASES["default"]["PORT"] = free_port()
        pool = settings.DATABASES["default"]["OPTIONS"].get("pool")
        if pool:
            settings.DATABASES["default"]["OPTIONS"]["pool"] = {**pool, "timeout": 1}
        yield


def test_database_down_is_a_503_page_in_tenant_and_staff_styles_and_json(database_gone):
    client = Client(raise_request_exception=False)
    tenant_page = client.get("/documents/", HTTP_HOST="acme." + django_settings.METIS_BASE_DOMAIN)
    client.cookies["sessionid"] = "a" * 32  # a session to look up: the database is asked
    staff_page = client.get("/admin/", HTTP_HOST=django_settings.METIS_BASE_DOMAIN)
    api = client.get("/documents/", HTTP_HOST="acme.localhost", HTTP_ACCEPT="application/json")
    assert_unavailable_page(tenant_page, style="tenants/tenants.css")
    assert "Our database is unavailable" in tenant_page.content.decode()
    assert_unavailable_page(staff_page, style="admin/css/base.css")
    assert "Content-Security-Policy" in tenant_page  # the page still gets the policy
    assert api.status_code == 503 and api["Retry-After"] == "30"
    assert api.json() == {
        "error": "Our database is unavailable for a moment. Please try again shortly.",
        "service": "database",
        "retry_after": 30,
    }


def test_a_bug_or_a_refusal_is_not_an_outage():
    from botocore.exceptions import ClientError
    from kombu.exceptions import OperationalError as KombuError

    from metis import unavailable

    denied = ClientError(
        {"Error": {"Code": "AccessDenied"}, "ResponseMetadata": {"HTTPStatusCode": 403}}, "Get"
    )
    failing = ClientError(
        {"Error": {"Code": "InternalError"}, "ResponseMetadata": {"HTTPStatusCode": 500}}, "Get"
    )
    assert unavailable.outage_of(ValueError("a bug")) is None  # stays a 500
    assert unavailable.outage_of(denied) is None  # a configuration error, not an outage
    assert unavailable.outage_of(failing).service == "s3"
    # A task that cannot be queued (the page's work is done, the job is not): try again.
    assert unavailable.outage_of(KombuError("broker down")).service == "broker"


@pytest.fixture(scope="module")
def private_redis():
    server = services.PrivateRedis().start()
    yield server
    server.stop()


@pytest.fixture
def redis_caches(private_redis, settings):
    settings.REDIS_URL = private_redis.url
    settings.CACHES = private_redis.caches(throttle_prefix=f"test-{uuid.uuid4().hex}")
    if not private_redis.process:
        private_redis.start()
    yield private_redis
    if not private_redis.process:
        private_redis.start()


def test_with_redis_down_signed_in_pages_work_and_sign_in_fails_closed(acme, redis_caches):
    client = Client(HTTP_HOST=host_of(acme), raise_request_exception=False)
    signed_in = client.post("/login/", {"email": "alice@acme.example", "password": TEST_PASSWORD})
    assert signed_in.status_code == 302
    connection.close()
    redis_caches.stop()
    try:
        home = client.get("/")
        documents = client.get("/documents/")
        stranger = Client(HTTP_HOST=host_of(acme), raise_request_exception=False)
        sign_in = stranger.post(
            "/login/", {"email": "alice@acme.example", "password": TEST_PASSWORD}
        )
    finally:
        redis_caches.start()
    # Sessions come from PostgreSQL while Redis is away.
    assert home.status_code == 200 and b"alice@acme.example" in home.content
    assert documents.status_code == 200
    # The throttle cannot count: sign-in is refused with a clear 503, not let through.
    assert_unavailable_page(sign_in, style="tenants/tenants.css")
    assert "Signing in" in sign_in.content.decode()
    assert "sessionid" not in sign_in.cookies
    # Redis is back: signing in works again, and so does the signed-in session.
    again = Client(HTTP_HOST=host_of(acme)).post(
        "/login/", {"email": "alice@acme.example", "password": TEST_PASSWORD}
    )
    assert again.status_code == 302
    assert client.get("/").status_code == 200


def test_unavailable_page_renders_without_a_query(acme, django_assert_num_queries, rf):
    from metis import unavailable

    request = rf.get("/documents/", HTTP_HOST=host_of(acme))
    request.tenant = acme
    outage = unavailable.outage_of(unavailable.ClickHouseUnavailable("down"))
    with django_assert_num_queries(0):
        response = unavailable.unavailable_response(request, outage)
    assert response.status_code == 503
    assert b"Acme Lending" in response.content and b"Analytics is unavailable" in response.content
