"""Injected SQL inside tenant A's transaction cannot reach tenant B's rows.

Each test plays an attacker who runs arbitrary SQL as the runtime role inside a legitimate
tenant-A transaction, knowing the schema, every tenant id and the exact seal of a real tenant-B
transaction. The data is committed, so the only guard is PostgreSQL itself.
"""

from __future__ import annotations

import threading

import pytest
from django.db import DatabaseError, connection, connections, transaction

from tenants import db
from tests.factories import TenantFactory, TenantUserFactory


@pytest.fixture
def two_tenants(committed_db):
    acme, globex = TenantFactory(subdomain="acme"), TenantFactory(subdomain="globex")
    TenantUserFactory(tenant=acme, email="alice@acme.example")
    TenantUserFactory(tenant=globex, email="gina@globex.example")
    return acme, globex


def emails_after(*statements: tuple[str, list]) -> set[str]:
    """Run the statements, then read every user row the transaction may see."""
    with connection.cursor() as cursor:
        for sql, params in statements:
            cursor.execute(sql, params)
        cursor.execute("SELECT email FROM users")
        return {row[0] for row in cursor.fetchall()}


# The only errors an attack may end in: the database refusing it, not a bug of ours.
REFUSALS = ("tenant seal refused", "permission denied", "must be member")


def attack(tenant, *statements: tuple[str, list]) -> set[str]:
    """The emails seen after running `statements` inside `tenant`'s transaction; none if refused."""
    try:
        with db.tenant_context(tenant.pk):
            return emails_after(*statements)
    except DatabaseError as exc:
        assert any(refusal in str(exc) for refusal in REFUSALS), exc
        return set()


def seal_of_live_transaction(tenant) -> tuple[str, int, threading.Event]:
    """Return the seal and backend pid of a real transaction of `tenant`, held open meanwhile."""
    captured: dict = {}
    ready, done = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with db.tenant_context(tenant.pk), connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM users")
                cursor.execute("SELECT current_setting('app.tenant_seal'), pg_backend_pid()")
                captured["seal"], captured["pid"] = cursor.fetchone()
                ready.set()
                done.wait(30)
        finally:
            connections.close_all()

    thread = threading.Thread(target=hold)
    thread.start()
    assert ready.wait(30)
    done.thread = thread  # type: ignore[attr-defined]
    return captured["seal"], captured["pid"], done


def test_the_legitimate_context_sees_its_own_rows(two_tenants):
    acme, globex = two_tenants
    assert attack(acme) == {"alice@acme.example"}
    assert attack(globex) == {"gina@globex.example"}


@pytest.mark.parametrize("is_local", ["true", "false"])
def test_setting_every_app_setting_to_the_other_tenant_reveals_nothing(two_tenants, is_local):
    acme, globex = two_tenants
    statements = [
        (f"SELECT set_config(%s, %s, {is_local})", [name, value])
        for name, value in [
            ("app.current_tenant", str(globex.pk)),
            ("app.all_tenants", "on"),
            ("app.tenant_id", str(globex.pk)),
            ("app.tenant_seal", str(globex.pk)),
            ("app.tenant_seal", f"{globex.pk}.{'0' * 64}"),
        ]
    ]
    for statement in statements:
        assert "gina@globex.example" not in attack(acme, statement)
    assert "gina@globex.example" not in attack(acme, *statements)


def test_replaying_a_live_seal_of_the_other_tenant_on_another_backend_fails(two_tenants):
    acme, globex = two_tenants
    seal, pid, done = seal_of_live_transaction(globex)
    try:
        with db.tenant_context(acme.pk), connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            assert cursor.fetchone()[0] != pid
        for is_local in ("true", "false"):
            replay = (f"SELECT set_config('app.tenant_seal', %s, {is_local})", [seal])
            assert attack(acme, replay) == set()
    finally:
        done.set()
        done.thread.join()  # type: ignore[attr-defined]


def test_replaying_a_seal_on_the_same_backend_in_a_later_transaction_fails(two_tenants):
    acme, globex = two_tenants
    with transaction.atomic(), db.tenant_context(globex.pk), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM users")
        cursor.execute("SELECT current_setting('app.tenant_seal'), pg_backend_pid()")
        seal, pid = cursor.fetchone()
    with db.tenant_context(acme.pk), connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] == pid  # the very backend the seal was made for
        with pytest.raises(DatabaseError, match="tenant seal refused"):
            cursor.execute("SELECT set_config('app.tenant_seal', %s, true)", [seal])
            cursor.execute("SELECT email FROM users")


def test_a_session_level_seal_does_not_survive_into_later_transactions(two_tenants):
    acme, globex = two_tenants
    with db.tenant_context(globex.pk, atomic=False), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM users")
        cursor.execute("SELECT current_setting('app.tenant_seal')")
        cursor.execute("SELECT set_config('app.tenant_seal', %s, false)", [cursor.fetchone()[0]])
    # Later, outside any context on the same connection: the session-level copy seals nothing.
    try:
        assert emails_after() == set()
    except DatabaseError as exc:
        assert "tenant seal refused" in str(exc)
    assert attack(acme) == {"alice@acme.example"}  # the legitimate seal still wins


@pytest.mark.parametrize(
    "statements",
    [
        ["RESET app.tenant_seal"],
        ["RESET ALL"],
        ["SAVEPOINT s", "RESET ALL", "RELEASE SAVEPOINT s"],
        [
            "SAVEPOINT s",
            "SELECT set_config('app.current_tenant', '{globex}', true)",
            "ROLLBACK TO SAVEPOINT s",
        ],
        ["SET LOCAL app.all_tenants = on", "SET LOCAL app.current_tenant = '{globex}'"],
        ["SET SESSION app.all_tenants = on"],
        ["SET ROLE metis_read_all_tenants"],
        ["SET ROLE metis_owner"],
        ["SET SESSION AUTHORIZATION metis_owner"],
    ],
)
def test_resets_savepoints_and_role_switches_reveal_nothing(two_tenants, statements):
    acme, globex = two_tenants
    seen = attack(acme, *((s.format(globex=globex.pk), []) for s in statements))
    assert "gina@globex.example" not in seen


def test_the_seal_key_and_its_schema_are_out_of_reach(two_tenants):
    acme, _ = two_tenants
    for sql in [
        "SELECT * FROM metis_private.tenant_seal_key",
        "CREATE FUNCTION public.metis_steal() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "CREATE TEMP TABLE users (email text)",
        "ALTER FUNCTION public.metis_sealed_tenant() SECURITY INVOKER",
    ]:
        with (
            pytest.raises(DatabaseError, match=r"permission denied|must be owner"),
            db.tenant_context(acme.pk),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql)


def test_the_runtime_role_has_no_all_tenants_path(two_tenants):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_has_role(current_user, 'metis_read_all_tenants', 'MEMBER'), "
            "(SELECT rolbypassrls FROM pg_roles WHERE rolname = current_user)"
        )
        assert cursor.fetchone() == (False, False)
        cursor.execute("SELECT set_config('app.all_tenants', 'on', false)")
        cursor.execute("SELECT count(*) FROM users")
        assert cursor.fetchone()[0] == 0
        cursor.execute("RESET app.all_tenants")


def test_staff_all_tenants_reads_go_through_the_read_only_role(two_tenants):
    from tenants.models import TenantUser

    with db.all_tenants_context():
        emails = set(TenantUser.objects.values_list("email", flat=True))
        with pytest.raises(DatabaseError, match="read-only transaction"):
            TenantUser.objects.using("staff_read").filter(email__contains="@").update(name="x")
    assert emails == {"alice@acme.example", "gina@globex.example"}
    with connections["staff_read"].cursor() as cursor:
        cursor.execute("SELECT current_user")
        assert cursor.fetchone()[0] != connection.settings_dict["USER"]
