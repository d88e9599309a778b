"""Django's psycopg pool: one physical connection serves tenants in turn without leaking."""

import pytest
from django.db import connection, connections
from django.db.backends.signals import connection_created
from django.test import Client

from tests.conftest import host_of
from tests.factories import TEST_PASSWORD, TenantFactory, TenantUserFactory


@pytest.fixture
def pool_of_one(committed_db, settings):
    default = connections["default"]
    options = settings.DATABASES["default"]["OPTIONS"]
    saved = options.get("pool")
    default.close()
    default.close_pool()
    options["pool"] = {"min_size": 1, "max_size": 1, "timeout": 10}
    yield default
    default.close()
    default.close_pool()
    if saved is None:
        options.pop("pool", None)
    else:
        options["pool"] = saved


def served(response):
    # The test client keeps the connection between requests; a real server returns it to the
    # pool at request_finished. Do that here, so each request checks a connection out afresh.
    connection.close()
    return response


def signed_in(tenant, email) -> Client:
    client = Client(HTTP_HOST=host_of(tenant))
    response = served(client.post("/login/", {"email": email, "password": TEST_PASSWORD}))
    assert response.status_code == 302
    return client


def test_pool_of_one_serves_two_tenants_in_turn(pool_of_one):
    acme, globex = TenantFactory(subdomain="acme"), TenantFactory(subdomain="globex")
    TenantUserFactory(tenant=acme, email="alice@acme.example")
    TenantUserFactory(tenant=globex, email="gina@globex.example")
    pool_of_one.close()
    backend_pids = []

    def record(sender, connection, **kwargs):
        backend_pids.append(connection.connection.info.backend_pid)

    connection_created.connect(record)
    try:
        acme_client = signed_in(acme, "alice@acme.example")
        globex_client = signed_in(globex, "gina@globex.example")
        first = served(acme_client.get("/")).content
        second = served(globex_client.get("/")).content
        with connection.cursor() as cursor:  # the same connection, after both requests
            cursor.execute("SELECT coalesce(current_setting('app.current_tenant', true), '')")
            leftover = cursor.fetchone()[0]
            cursor.execute("SELECT count(*) FROM users")
            unscoped = cursor.fetchone()[0]
    finally:
        connection_created.disconnect(record)
    assert len(backend_pids) >= 4 and len(set(backend_pids)) == 1  # one physical connection
    assert b"alice@acme.example" in first and b"gina@globex.example" not in first
    assert b"gina@globex.example" in second and b"alice@acme.example" not in second
    assert leftover == ""
    assert unscoped == 0
