"""Injected SQL cannot make itself staff: staff-account tables refuse unsealed writes.

The attacker runs arbitrary SQL as the runtime role (`connections["default"]`, exactly what an
injection can do) and wants an admin session: a password and superuser flag of its choosing, or
a staff user of its own, plus an authenticator app or backup code the admin will accept. The
data is committed, so the only guard is PostgreSQL. The legitimate paths (sign-in, enrolment,
backup codes, the admin's user pages, Django's commands) still write through the ORM.
"""

from __future__ import annotations

import io
import re
import threading

import psycopg
import pyotp
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.management.commands import changepassword
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.db import DatabaseError, IntegrityError, connection, connections, transaction
from django.test import Client
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from tenants import accounts_seal, checks, db, seal, two_factor
from tests.factories import TEST_PASSWORD
from tests.support import staff

pytestmark = pytest.mark.committed

ATTACKER_PASSWORD = "attacker-password-1"
# Every refusal an attack may end in: the trigger, the seal check, or a missing privilege.
REFUSED = r"refused|permission denied|must be owner"


@pytest.fixture
def victim(staff_user):
    """A superuser with an authenticator app and backup codes, committed."""
    app = staff.authenticator_app(staff_user)
    codes = two_factor.backup_codes_renew(user=staff_user)
    staff_user.app, staff_user.codes = app, codes
    return staff_user


@pytest.fixture
def clerk(staff_user_model):
    """A staff member with no rights: the account an attacker would promote."""
    return staff_user_model.objects.create_user("clerk", "clerk@metis.example", TEST_PASSWORD)


def accounts_state() -> tuple:
    """What decides who signs in to the admin and as whom, read as the runtime role."""
    with connection.cursor() as cursor:
        state = []
        for table in accounts_seal.protected_tables():
            cursor.execute(f"SELECT * FROM {table} ORDER BY 1")
            state.append((table, cursor.fetchall()))
        return tuple(state)


def run_injected(*statements: tuple[str, list]) -> None:
    """Run the statements as the runtime role, in one transaction of their own."""
    with transaction.atomic(), connection.cursor() as cursor:
        for sql, params in statements:
            cursor.execute(sql, params)


def assert_refused(*statements: tuple[str, list]) -> None:
    before = accounts_state()
    with pytest.raises(DatabaseError, match=REFUSED):
        run_injected(*statements)
    assert accounts_state() == before


def totp_insert(user_id: int) -> tuple[str, list]:
    return (
        "INSERT INTO otp_totp_totpdevice (user_id, name, confirmed, key, step, t0, digits, "
        "tolerance, drift, last_t, throttling_failure_count) "
        "VALUES (%s, 'phone', true, %s, 30, 0, 6, 1, 0, -1, 0)",
        [user_id, "3132333435363738393031323334353637383930"],
    )


ATTACKS = {
    "promote with a new password": lambda victim, clerk: [
        (
            "UPDATE auth_user SET password = %s, is_superuser = true, is_staff = true "
            "WHERE username = 'clerk'",
            [make_password(ATTACKER_PASSWORD)],
        )
    ],
    "take over the superuser's password": lambda victim, clerk: [
        ("UPDATE auth_user SET password = %s WHERE id = %s", [make_password("x"), victim.pk])
    ],
    "insert a staff superuser": lambda victim, clerk: [
        (
            "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, "
            "email, is_staff, is_active, date_joined) "
            "VALUES (%s, true, 'mallory', '', '', '', true, true, now())",
            [make_password(ATTACKER_PASSWORD)],
        )
    ],
    "insert an app device for the superuser": lambda victim, clerk: [totp_insert(victim.pk)],
    "insert a backup code for the superuser": lambda victim, clerk: [
        (
            "INSERT INTO otp_static_statictoken (device_id, token) "
            "SELECT id, 'letmein' FROM otp_static_staticdevice WHERE user_id = %s",
            [victim.pk],
        )
    ],
    "insert a backup-code device": lambda victim, clerk: [
        (
            "INSERT INTO otp_static_staticdevice (user_id, name, confirmed, "
            "throttling_failure_count) VALUES (%s, 'mine', true, 0)",
            [clerk.pk],
        )
    ],
    "reset the app's counters": lambda victim, clerk: [
        ("UPDATE otp_totp_totpdevice SET last_t = -1, throttling_failure_count = 0", [])
    ],
    "add a user to a group": lambda victim, clerk: [
        ("INSERT INTO auth_group (name) VALUES ('admins')", []),
        (
            "INSERT INTO auth_user_groups (user_id, group_id) "
            "SELECT %s, id FROM auth_group WHERE name = 'admins'",
            [clerk.pk],
        ),
    ],
    "grant a user a permission": lambda victim, clerk: [
        (
            "INSERT INTO auth_user_user_permissions (user_id, permission_id) "
            "SELECT %s, id FROM auth_permission WHERE codename = 'change_user'",
            [clerk.pk],
        )
    ],
    "grant a group a permission": lambda victim, clerk: [
        ("INSERT INTO auth_group (name) VALUES ('admins')", []),
        (
            "INSERT INTO auth_group_permissions (group_id, permission_id) "
            "SELECT g.id, p.id FROM auth_group g, auth_permission p WHERE g.name = 'admins'",
            [],
        ),
    ],
    # Without devices the next sign-in enrols a new app: the attacker's, given the password.
    "delete the app devices": lambda victim, clerk: [("DELETE FROM otp_totp_totpdevice", [])],
    "delete the backup codes": lambda victim, clerk: [("DELETE FROM otp_static_statictoken", [])],
    "delete the backup devices": lambda victim, clerk: [
        ("DELETE FROM otp_static_statictoken", []),
        ("DELETE FROM otp_static_staticdevice", []),
    ],
    "delete a user": lambda victim, clerk: [("DELETE FROM auth_user WHERE id = %s", [clerk.pk])],
    "truncate": lambda victim, clerk: [("TRUNCATE auth_user CASCADE", [])],
    "truncate the codes": lambda victim, clerk: [("TRUNCATE otp_static_statictoken", [])],
    "upsert": lambda victim, clerk: [
        (
            "INSERT INTO auth_user SELECT * FROM auth_user WHERE id = %s "
            "ON CONFLICT (id) DO UPDATE SET is_superuser = true",
            [clerk.pk],
        )
    ],
    "merge": lambda victim, clerk: [
        (
            "MERGE INTO auth_user u USING (SELECT %s::int AS id) s ON u.id = s.id "
            "WHEN MATCHED THEN UPDATE SET is_superuser = true",
            [clerk.pk],
        )
    ],
    "a writable CTE": lambda victim, clerk: [
        (
            "WITH promoted AS (UPDATE auth_user SET is_superuser = true RETURNING id) "
            "SELECT count(*) FROM promoted",
            [],
        )
    ],
}


@pytest.mark.parametrize("name", ATTACKS)
def test_injected_writes_to_staff_accounts_are_refused(victim, clerk, name):
    assert_refused(*ATTACKS[name](victim, clerk))


@pytest.mark.parametrize(
    "name", ["promote with a new password", "insert an app device for the superuser"]
)
def test_injected_writes_are_refused_inside_a_tenant_transaction(victim, clerk, tenant, name):
    with db.tenant_context(tenant.pk, atomic=False):
        assert_refused(*ATTACKS[name](victim, clerk))


def test_truncate_is_refused_even_where_the_privilege_was_granted(victim):
    runtime_role = connection.settings_dict["USER"]
    with connections["owner"].cursor() as cursor:
        cursor.execute(f"GRANT TRUNCATE ON otp_static_statictoken TO {runtime_role}")
    try:
        assert_refused(("TRUNCATE otp_static_statictoken", []))
    finally:
        with connections["owner"].cursor() as cursor:
            cursor.execute(f"REVOKE TRUNCATE ON otp_static_statictoken FROM {runtime_role}")


def test_an_injection_after_a_sealed_write_in_the_same_transaction_is_refused(victim, clerk):
    before = accounts_state()
    with pytest.raises(DatabaseError, match=REFUSED), transaction.atomic():
        victim.first_name = "Vic"
        victim.save(update_fields=["first_name"])  # sealed, and cleared right after
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting(%s, true)", [seal.ACCOUNTS_SEAL_SETTING])
            assert cursor.fetchone()[0] == ""
            cursor.execute("UPDATE auth_user SET is_superuser = true WHERE id = %s", [clerk.pk])
    assert accounts_state() == before


def test_a_forged_seal_is_refused(victim, clerk):
    for value in ["0" * 64, "accounts", seal.accounts_seal_for(1, 1)]:
        forge = ("SELECT set_config(%s, %s, true)", [seal.ACCOUNTS_SEAL_SETTING, value])
        with pytest.raises(DatabaseError, match="accounts seal refused"):
            run_injected(forge, *ATTACKS["promote with a new password"](victim, clerk))
        session_forge = ("SELECT set_config(%s, %s, false)", [seal.ACCOUNTS_SEAL_SETTING, value])
        with pytest.raises(DatabaseError, match="accounts seal refused"):
            run_injected(session_forge, totp_insert(victim.pk))
        with connection.cursor() as cursor:
            cursor.execute(f"RESET {seal.ACCOUNTS_SEAL_SETTING}")


def test_the_tenant_seal_of_the_same_transaction_does_not_pass_for_an_accounts_seal(
    victim, clerk, tenant
):
    before = accounts_state()
    with (
        pytest.raises(DatabaseError, match="accounts seal refused"),
        db.tenant_context(tenant.pk),
        connection.cursor() as cursor,
    ):
        cursor.execute("SELECT count(*) FROM users")
        cursor.execute("SELECT current_setting('app.tenant_seal')")
        live_mac = cursor.fetchone()[0].split(".", 1)[1]  # valid for this very transaction
        cursor.execute("SELECT set_config(%s, %s, true)", [seal.ACCOUNTS_SEAL_SETTING, live_mac])
        cursor.execute("UPDATE auth_user SET is_superuser = true WHERE id = %s", [clerk.pk])
    assert accounts_state() == before


def runtime_role_session() -> psycopg.Connection:
    """Another session as the runtime role: what an injection elsewhere sees."""
    params = connection.settings_dict
    return psycopg.connect(
        dbname=params["NAME"],
        user=params["USER"],
        password=params["PASSWORD"] or None,
        host=params["HOST"],
        port=params["PORT"] or None,
        autocommit=True,
    )


class SealCapture:
    """An execute wrapper inside the sealing one: it runs once the accounts seal is set, just
    before the statement. It records the seal, and what another session of the runtime role
    then sees of that backend's last query (pg_stat_activity), before reading anything itself.
    """

    def __init__(self) -> None:
        self.seals: list[str] = []
        self.seen_by_others: list[str] = []
        self.pids: set[int] = set()

    def __call__(self, execute, sql, params, many, context):
        raw = context["connection"].connection
        with runtime_role_session() as other:
            query = other.execute(
                "SELECT query FROM pg_stat_activity WHERE pid = %s", [raw.info.backend_pid]
            ).fetchone()[0]
        with raw.cursor() as cursor:  # psycopg's own: no execute wrappers
            cursor.execute("SELECT current_setting(%s, true)", [seal.ACCOUNTS_SEAL_SETTING])
            value = cursor.fetchone()[0]
        if value:
            self.seals.append(value)
            self.seen_by_others.append(query)
            self.pids.add(raw.info.backend_pid)
        return execute(sql, params, many, context)


def captured_seal(user) -> tuple[str, int]:
    """Return a real accounts seal and its backend, read during a legitimate save."""
    capture = SealCapture()
    with connection.execute_wrapper(capture):
        user.first_name = "Captured"
        user.save(update_fields=["first_name"])
    assert len(capture.seals) == 1
    return capture.seals[0], capture.pids.pop()


def test_a_seal_replayed_in_a_later_transaction_on_the_same_backend_is_refused(victim, clerk):
    real, pid = captured_seal(victim)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] == pid  # the very backend the seal was made for
    for is_local in ("true", "false"):
        replay = (f"SELECT set_config(%s, %s, {is_local})", [seal.ACCOUNTS_SEAL_SETTING, real])
        before = accounts_state()
        with pytest.raises(DatabaseError, match="accounts seal refused"):
            run_injected(replay, *ATTACKS["promote with a new password"](victim, clerk))
        assert accounts_state() == before
    with connection.cursor() as cursor:
        cursor.execute(f"RESET {seal.ACCOUNTS_SEAL_SETTING}")


def test_a_seal_replayed_on_another_backend_is_refused(victim, clerk):
    captured: dict = {}

    def elsewhere() -> None:
        try:
            user = get_user_model().objects.get(pk=victim.pk)
            captured["seal"], captured["pid"] = captured_seal(user)
        finally:
            connections.close_all()

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join(30)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != captured["pid"]
    replay = ("SELECT set_config(%s, %s, true)", [seal.ACCOUNTS_SEAL_SETTING, captured["seal"]])
    with pytest.raises(DatabaseError, match="accounts seal refused"):
        run_injected(replay, totp_insert(victim.pk))


def test_other_sessions_never_see_the_seal_in_query_text(victim):
    capture = SealCapture()
    with connection.execute_wrapper(capture), transaction.atomic():
        victim.first_name = "Seen"
        victim.save(update_fields=["first_name"])
        TOTPDevice.objects.filter(user=victim).delete()
    assert capture.seals and len(capture.seen_by_others) == len(capture.seals)
    for value, query in zip(capture.seals, capture.seen_by_others, strict=True):
        assert "set_config" in query and value not in query


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE auth_user DISABLE TRIGGER ALL",
        f"ALTER TABLE otp_totp_totpdevice DISABLE TRIGGER {accounts_seal.TRIGGER}",
        f"DROP TRIGGER {accounts_seal.TRIGGER} ON otp_static_statictoken",
        "ALTER TABLE auth_user OWNER TO CURRENT_USER",
        "SET session_replication_role = replica",
        "SET ROLE metis_owner",
        "SET SESSION AUTHORIZATION metis_owner",
        f"ALTER FUNCTION {accounts_seal.SEALED_FUNCTION} SECURITY INVOKER",
        f"CREATE OR REPLACE FUNCTION {accounts_seal.SEALED_FUNCTION} RETURNS boolean "
        "LANGUAGE sql AS 'SELECT true'",
        f"CREATE OR REPLACE FUNCTION {accounts_seal.GUARD_FUNCTION} RETURNS trigger "
        "LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END'",
        "SELECT * FROM metis_private.tenant_seal_key",
    ],
)
def test_the_guard_cannot_be_switched_off_by_the_runtime_role(victim, clerk, sql):
    assert_refused((sql, []), *ATTACKS["promote with a new password"](victim, clerk))


def test_an_explicit_accounts_write_block_may_bulk_write(victim):
    device = StaticDevice.objects.get(user=victim)
    with pytest.raises(DatabaseError, match=REFUSED), transaction.atomic():
        StaticToken.objects.bulk_create([StaticToken(device=device, token="unsealed")])
    with db.accounts_write():
        StaticToken.objects.bulk_create([StaticToken(device=device, token="sealed")])
        get_user_model().objects.filter(pk=victim.pk).update(first_name="Bulk")
    assert StaticToken.objects.filter(token="sealed").exists()
    # The block is over: the next statement is refused again.
    with pytest.raises(DatabaseError, match=REFUSED):
        get_user_model().objects.filter(pk=victim.pk).update(first_name="After")


def test_a_write_that_failed_leaves_no_window_open(victim, clerk):
    with pytest.raises(IntegrityError):
        get_user_model().objects.create(username=victim.username)  # no post_save signal
    assert not connection.account_writes_open()  # type: ignore[attr-defined]
    assert_refused(*ATTACKS["promote with a new password"](victim, clerk))


def test_a_write_that_failed_in_a_savepoint_leaves_no_window_open(victim, clerk):
    before = accounts_state()
    with pytest.raises(DatabaseError, match=REFUSED), transaction.atomic():
        with pytest.raises(IntegrityError), transaction.atomic():
            get_user_model().objects.create(username=victim.username)
        assert not connection.account_writes_open()  # type: ignore[attr-defined]
        with connection.cursor() as cursor:
            cursor.execute("UPDATE auth_user SET is_superuser = true WHERE id = %s", [clerk.pk])
    assert accounts_state() == before


# --- The legitimate paths, against the real database, in autocommit as requests run ---------


def staff_host() -> Client:
    return Client(HTTP_HOST=settings.METIS_BASE_DOMAIN)


def password_step(client: Client):
    return client.post(
        "/admin/login/?next=/admin/", {"username": "staffer", "password": TEST_PASSWORD}
    )


def test_staff_sign_in_with_password_and_app_code(victim):
    client = staff_host()
    done = staff.sign_in(client, username="staffer", password=TEST_PASSWORD, app=victim.app)
    assert done.status_code == 302 and client.get("/admin/").status_code == 200
    victim.refresh_from_db()
    assert victim.last_login is not None  # update_last_login saved
    assert TOTPDevice.objects.get(user=victim).last_t > -1  # the used step, saved


def test_a_wrong_code_is_counted_on_the_device(victim):
    client = staff_host()
    step = password_step(client)
    client.post(step["Location"], {"code": "not-a-code"})
    assert TOTPDevice.objects.get(user=victim).throttling_failure_count == 1


def test_a_backup_code_signs_in_once_and_is_deleted(victim):
    client = staff_host()
    step = password_step(client)
    assert client.post(step["Location"], {"code": victim.codes[0]}).status_code == 302
    assert client.get("/admin/").status_code == 200
    left = StaticToken.objects.filter(device__user=victim).values_list("token", flat=True)
    assert victim.codes[0] not in left and len(left) == two_factor.BACKUP_CODES - 1


def test_enrolment_creates_the_app_and_the_backup_codes(staff_user):
    client = staff_host()
    step = password_step(client)
    page = client.get(step["Location"]).content.decode()
    secret = re.search(r'id="two-factor-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    done = client.post(step["Location"], {"code": pyotp.TOTP(secret).now()})
    assert len(re.findall(r"<li><code>(\w+)</code></li>", done.content.decode())) == 10
    assert TOTPDevice.objects.get(user=staff_user).confirmed
    assert StaticToken.objects.filter(device__user=staff_user).count() == 10


def test_the_admin_adds_a_user_sets_a_password_and_groups_and_deletes_it(staff_client):
    group = Group.objects.create(name="support")
    group.permissions.add(Permission.objects.get(codename="view_user"))
    added = staff_client.post(
        "/admin/auth/user/add/",
        {
            "username": "newbie",
            "password1": "a-long-enough-password-42",
            "password2": "a-long-enough-password-42",
            "usable_password": "true",
        },
    )
    assert added.status_code == 302, added.content
    newbie = get_user_model().objects.get(username="newbie")
    changed = staff_client.post(
        f"/admin/auth/user/{newbie.pk}/change/",
        {
            "username": "newbie",
            "is_active": "on",
            "is_staff": "on",
            "groups": [group.pk],
            "user_permissions": [Permission.objects.get(codename="view_group").pk],
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
        },
    )
    assert changed.status_code == 302, changed.content
    password = staff_client.post(
        f"/admin/auth/user/{newbie.pk}/password/",
        {"password1": "another-long-password-43", "password2": "another-long-password-43"},
    )
    assert password.status_code == 302, password.content
    newbie.refresh_from_db()
    assert newbie.is_staff and newbie.check_password("another-long-password-43")
    assert list(newbie.groups.all()) == [group]
    assert newbie.user_permissions.count() == 1
    deleted = staff_client.post(f"/admin/auth/user/{newbie.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302, deleted.content
    assert not get_user_model().objects.filter(username="newbie").exists()
    group.delete()  # its permissions' rows go with it
    assert not Group.objects.exists()


def test_createsuperuser_and_changepassword(committed_db, monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a-long-enough-password-42")
    call_command(
        "createsuperuser",
        "--noinput",
        "--username=root2",
        "--email=root2@metis.example",
        stdout=io.StringIO(),
    )
    # changepassword reads the password from the terminal (getpass): give it one.
    monkeypatch.setattr(
        changepassword.Command, "_get_pass", lambda self, prompt="": "another-long-password-43"
    )
    call_command("changepassword", "root2", stdout=io.StringIO())
    root = get_user_model().objects.get(username="root2")
    assert root.is_superuser and root.check_password("another-long-password-43")


def test_seed_demo_creates_the_staff_login(committed_db):
    call_command("seed_demo", stdout=io.StringIO())
    call_command("seed_demo", stdout=io.StringIO())  # idempotent
    assert get_user_model().objects.get(username="staff").is_superuser


def test_the_two_factor_reset_command(victim):
    call_command("staff_two_factor_reset", "staffer", stdout=io.StringIO())
    assert not TOTPDevice.objects.filter(user=victim).exists()
    assert not StaticDevice.objects.filter(user=victim).exists()


# --- Start-up checks ------------------------------------------------------------------------


@pytest.mark.django_db(databases=["default", "owner"])
def test_the_check_refuses_a_table_without_its_trigger():
    assert checks.database_posture_errors(connections["default"]) == []
    with connections["owner"].cursor() as cursor:
        cursor.execute(f"DROP TRIGGER {accounts_seal.TRIGGER} ON otp_static_statictoken")
        cursor.execute(f"ALTER TABLE auth_user DISABLE TRIGGER {accounts_seal.TRIGGER}")
    guards = accounts_seal.table_guards(connections["owner"])
    assert [g.table for g in guards if not g.guarded] == ["auth_user", "otp_static_statictoken"]
    errors = checks.database_posture_errors(connections["owner"])
    assert "tenants.E014" in {e.id for e in errors}


@pytest.mark.django_db(databases=["default", "owner"])
def test_the_check_refuses_a_runtime_role_that_owns_the_tables():
    errors = {e.id: e.msg for e in checks.database_posture_errors(connections["owner"])}
    assert all(table in errors["tenants.E015"] for table in accounts_seal.protected_tables())
    assert "tenants.E014" not in errors


@pytest.mark.django_db(databases=["default", "owner"])
def test_the_migration_sql_undoes_and_redoes_itself():
    tables = tuple(accounts_seal.protected_tables())
    with connections["owner"].cursor() as cursor:
        cursor.execute(accounts_seal.drop_sql(tables))
        assert not any(g.guarded for g in accounts_seal.table_guards(connections["owner"]))
        cursor.execute(accounts_seal.create_sql(tables))
    assert all(g.guarded for g in accounts_seal.table_guards(connections["owner"]))
