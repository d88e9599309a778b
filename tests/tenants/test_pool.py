"""Django's psycopg pool: one physical connection serves tenants in turn without leaking."""

import http.client
import socket
import time

import pytest
from django.db import connection, connections
from django.db.backends.signals import connection_created
from django.test import Client

from tenants import pool
from tests.conftest import host_of
from tests.factories import TEST_PASSWORD, TenantFactory, TenantUserFactory


@pytest.fixture
def pool_of_one(committed_db, settings):
    default = connections["default"]
    options = settings.DATABASES["default"]["OPTIONS"]
    saved = options.get("pool")
    default.close()
    default.close_pool()
    # The production pool's options (its reset hook above all), with one connection.
    options["pool"] = {**(saved or {}), "min_size": 1, "max_size": 1, "timeout": 10}
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
            cursor.execute("SELECT coalesce(current_setting('app.tenant_seal', true), '')")
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


def test_a_returned_connection_forgets_everything_its_last_user_set(pool_of_one):
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        first_pid = cursor.fetchone()[0]
        cursor.execute("SELECT set_config('app.tenant_seal', 'left behind', false)")
        cursor.execute("SELECT set_config('app.all_tenants', 'on', false)")
        cursor.execute("SET application_name = 'left behind'")
        cursor.execute("SELECT pg_advisory_lock(42)")
        cursor.execute("PREPARE left_behind AS SELECT 1")
    pool.connection_release()
    assert connection.connection is None  # back in the pool
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_backend_pid(), coalesce(current_setting('app.tenant_seal', true), ''), "
            "coalesce(current_setting('app.all_tenants', true), ''), "
            "current_setting('application_name'), "
            "(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
            " AND pid = pg_backend_pid()), "
            "(SELECT count(*) FROM pg_prepared_statements)"
        )
        pid, seal, all_tenants, application_name, locks, prepared = cursor.fetchone()
    assert pid == first_pid  # the same physical connection, checked out again
    assert (seal, all_tenants, locks, prepared) == ("", "", 0, 0)
    assert application_name != "left behind"


def test_a_pool_of_one_serves_others_while_a_client_trickles_its_body(pool_of_one):
    """The request reading a slow body holds no connection: the only one serves another page."""
    from tests.documents.conftest import serve_app

    tenant = TenantFactory(subdomain="acme")
    host = host_of(tenant)
    pool_of_one.close()
    with serve_app(threaded=True) as port:
        first = http.client.HTTPConnection("127.0.0.1", port, timeout=8)
        first.request("GET", "/login/", headers={"Host": host})
        cookie = first.getresponse().getheader("Set-Cookie").split(";")[0]  # csrftoken=...
        trickler = socket.create_connection(("127.0.0.1", port))
        try:
            # With its CSRF cookie, the sign-in POST gets as far as reading its body.
            trickler.sendall(
                f"POST /login/ HTTP/1.1\r\nHost: {host}\r\nContent-Length: 1000\r\n"
                f"Cookie: {cookie}\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n\r\nemail=".encode()
            )
            time.sleep(1)  # the server is now waiting for the rest of that body
            started = time.monotonic()
            page = http.client.HTTPConnection("127.0.0.1", port, timeout=8)
            page.request("GET", "/login/", headers={"Host": host})
            status = page.getresponse().status
            waited = time.monotonic() - started
            trickler.sendall(b"a")  # still mid-body: the slow request is not over
        finally:
            trickler.close()
    assert status == 200
    assert waited < 5  # not the pool's 10 s timeout


# --- PostgreSQL down: a 503 at once, not after the pool's timeout -----------------------------


@pytest.fixture
def private_postgres(django_db_blocker, settings):
    """A private PostgreSQL the test may stop, the default alias's pool pointed at it (5 s)."""
    from tests.support import scratch, services

    server = services.PrivatePostgres().create()
    with django_db_blocker.unblock(), services.database_settings_kept():
        scratch.close_all_connections()
        default = settings.DATABASES["default"]
        # The superuser's own database: the test needs a server that answers, not our tables.
        default.update(HOST="127.0.0.1", PORT=server.port, NAME="postgres", USER="postgres")
        default["OPTIONS"]["pool"] = {
            **default["OPTIONS"]["pool"],
            "min_size": 2,
            "max_size": 4,
            "timeout": 5,
        }
        try:
            yield server
        finally:
            server.destroy()


def select_one() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()  # back to the pool, as at the end of a request


def test_postgres_refusing_connections_is_a_503_at_once_not_after_the_pool_timeout(
    private_postgres,
):
    select_one()  # the pool is open and has its connections
    private_postgres.stop()
    client = Client(raise_request_exception=False)

    took = []
    for _ in range(6):  # past the pool's idle connections, which die on first use
        started = time.monotonic()
        response = client.get("/login/", HTTP_HOST="acme.localhost")
        took.append(time.monotonic() - started)
        connection.close()
        assert response.status_code == 503
        assert "Our database is unavailable" in response.content.decode()
    assert max(took) < 1.5, took  # not the pool's 5 s

    private_postgres.start()
    deadline = time.monotonic() + 15
    while True:  # back by itself within a few seconds, without a restart
        try:
            select_one()
            break
        except Exception:
            assert time.monotonic() < deadline, "the pool did not find PostgreSQL again"
            time.sleep(0.2)


def test_the_breaker_checks_with_one_connect_and_forgets_a_server_that_is_back(settings):
    import psycopg

    from tests.support.ports import free_port

    breaker = pool.DownBreaker()
    params = {"host": "127.0.0.1", "port": free_port(), "dbname": "x", "user": "x"}
    server = ("127.0.0.1", str(params["port"]))

    class Empty:
        def get_stats(self):
            return {"pool_available": 0}

    breaker.check(Empty(), params)  # nothing failed: the pool decides
    breaker.failed(server, OSError("connection refused"))
    with pytest.raises(psycopg.OperationalError, match="failed: Connection refused"):
        breaker.check(Empty(), params)  # one quick connect of its own, refused
    assert breaker._begin_check(server)  # another request is finding out meanwhile:
    with pytest.raises(psycopg.OperationalError, match="not accepting connections"):
        breaker.check(Empty(), params)  # this one fails at once, no connect
    breaker._checking.discard(server)

    # The server came back a moment after refusing: the next request's connect finds it.
    database = settings.DATABASES["default"]
    up = {"host": database["HOST"], "port": database["PORT"], "dbname": database["NAME"]}
    up |= {"user": database["USER"], "password": database["PASSWORD"]}
    breaker.failed(pool._server_of(up), OSError("the database system is shutting down"))
    breaker.check(Empty(), up)
    assert pool._server_of(up) not in breaker._failures
