"""Row-level security as the app role: the database itself keeps tenants apart."""

import uuid

import pytest
from django.db import DatabaseError, connection, transaction

from tenants import db as tenant_db
from tenants import services as tenant_services
from tenants.models import TenantUser
from tests.factories import TenantUserFactory


def visible_emails() -> set[str]:
    return set(TenantUser.objects.values_list("email", flat=True))


def raw_emails() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT email FROM users")
        return {row[0] for row in cursor.fetchall()}


def test_tests_connect_as_the_runtime_role_rls_binds(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        )
        assert cursor.fetchone() == ("metis_app", False, False)


def test_other_tenants_users_are_invisible_through_the_orm(tenant_user, other_tenant_user):
    with tenant_db.tenant_context(tenant_user.tenant_id):
        assert visible_emails() == {"alice@acme.example"}
        # Even an explicit filter for the other tenant's id finds nothing.
        assert not TenantUser.objects.filter(tenant_id=other_tenant_user.tenant_id).exists()
        assert not TenantUser.objects.filter(pk=other_tenant_user.pk).exists()


def test_other_tenants_users_are_invisible_through_raw_sql(tenant_user, other_tenant_user):
    with tenant_db.tenant_context(other_tenant_user.tenant_id):
        assert raw_emails() == {"gina@globex.example"}
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM users WHERE tenant_id = %s", [tenant_user.tenant_id]
            )
            assert cursor.fetchone() == (0,)


def test_no_tenant_context_sees_no_rows(tenant_user, other_tenant_user):
    assert visible_emails() == set()
    assert raw_emails() == set()


def test_emptied_tenant_setting_sees_no_rows(tenant_user):
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('app.current_tenant', '', true)")
    assert raw_emails() == set()


def test_insert_for_another_tenant_is_refused_by_with_check(tenant, other_tenant):
    with (
        tenant_db.tenant_context(tenant.pk),
        pytest.raises(DatabaseError, match="row-level security"),
        transaction.atomic(),
    ):
        TenantUser.objects.create(tenant=other_tenant, email="mole@globex.example", name="Mole")
    with tenant_db.tenant_context(other_tenant.pk):
        assert visible_emails() == set()


def test_raw_insert_for_another_tenant_is_refused(tenant, other_tenant):
    with (
        tenant_db.tenant_context(tenant.pk),
        pytest.raises(DatabaseError, match="row-level security"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "INSERT INTO users (id, tenant_id, email, name, password, is_active, metadata, "
            "created_at) VALUES (gen_random_uuid(), %s, 'x@y.z', 'x', '', true, '{}', now())",
            [other_tenant.pk],
        )


def test_moving_a_row_to_another_tenant_is_refused(tenant_user, other_tenant):
    with (
        tenant_db.tenant_context(tenant_user.tenant_id),
        pytest.raises(DatabaseError),
        transaction.atomic(),
    ):
        TenantUser.objects.filter(pk=tenant_user.pk).update(tenant=other_tenant)


def test_insert_without_tenant_context_is_refused(tenant):
    with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
        TenantUser.objects.create(tenant=tenant, email="nobody@acme.example", name="Nobody")


def test_updates_and_deletes_cannot_reach_another_tenant(tenant_user, other_tenant_user):
    with tenant_db.tenant_context(tenant_user.tenant_id):
        assert TenantUser.objects.filter(pk=other_tenant_user.pk).update(name="pwned") == 0
        assert TenantUser.objects.filter(pk=other_tenant_user.pk).delete()[0] == 0
    with tenant_db.tenant_context(other_tenant_user.tenant_id):
        assert TenantUser.objects.get(pk=other_tenant_user.pk).name == "Gina Globex"


@pytest.mark.parametrize(
    "attack",
    [
        "ALTER TABLE users DISABLE ROW LEVEL SECURITY",
        "ALTER TABLE users NO FORCE ROW LEVEL SECURITY",
        "DROP POLICY tenant_isolation ON users",
        "TRUNCATE users",
        "SET LOCAL ROLE metis_owner",
    ],
)
def test_the_app_role_cannot_switch_rls_off(tenant_user, attack):
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(attack)


def test_row_security_off_errors_instead_of_returning_rows(tenant_user):
    with (
        pytest.raises(DatabaseError, match="row-level security"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("SET LOCAL row_security = off")
        cursor.execute("SELECT email FROM users")


def test_nested_context_restores_the_outer_tenant(tenant_user, other_tenant_user):
    with tenant_db.tenant_context(tenant_user.tenant_id):
        with tenant_db.tenant_context(other_tenant_user.tenant_id):
            assert visible_emails() == {"gina@globex.example"}
        assert visible_emails() == {"alice@acme.example"}
        assert tenant_db.current_tenant_id() == tenant_user.tenant_id
    assert visible_emails() == set()
    assert tenant_db.current_tenant_id() is None


def test_failed_block_leaves_no_tenant_behind(tenant_user):
    with pytest.raises(ZeroDivisionError), tenant_db.tenant_context(tenant_user.tenant_id):
        1 / 0  # noqa: B018
    assert visible_emails() == set()


@pytest.mark.committed
def test_all_tenants_context_reads_every_tenant_but_writes_none(tenant_user, other_tenant_user):
    with tenant_db.all_tenants_context():
        assert visible_emails() == {"alice@acme.example", "gina@globex.example"}
        assert TenantUser.objects.filter(pk=tenant_user.pk).update(name="changed") == 0
        with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
            TenantUser.objects.create(tenant=tenant_user.tenant, email="new@acme.example")
    assert visible_emails() == set()


def test_tenant_context_rejects_missing_or_malformed_ids(db):
    with pytest.raises(tenant_db.TenantContextError), tenant_db.tenant_context(""):
        pass
    with pytest.raises(tenant_db.TenantContextError), tenant_db.tenant_context("acme' OR 1=1 --"):
        pass


def test_unknown_tenant_id_sees_nothing(tenant_user):
    with tenant_db.tenant_context(uuid.uuid4()):
        assert visible_emails() == set()


def test_same_email_in_two_tenants_is_two_accounts(tenant, other_tenant):
    first = TenantUserFactory(tenant=tenant, email="Sam@Shared.example")
    second = TenantUserFactory(tenant=other_tenant, email="sam@shared.example")
    assert first.pk != second.pk
    assert first.email == second.email == "sam@shared.example"


@pytest.mark.committed
def test_tenant_context_inside_all_tenants_mode_sees_one_tenant(tenant_user, other_tenant_user):
    with tenant_db.all_tenants_context():
        with tenant_db.tenant_context(tenant_user.tenant_id):
            assert visible_emails() == {"alice@acme.example"}
        assert visible_emails() == {"alice@acme.example", "gina@globex.example"}


# --- The rule: entry points open the context, services require it -------------------------------


def test_require_tenant_context_fails_loudly_without_one(db):
    with pytest.raises(tenant_db.TenantContextError, match="no tenant context"):
        tenant_db.require_tenant_context()


def test_require_tenant_context_returns_the_tenant_and_refuses_another(tenant, other_tenant):
    with tenant_db.tenant_context(tenant.pk):
        assert tenant_db.require_tenant_context() == tenant.pk
        assert tenant_db.require_tenant_context(tenant) == tenant.pk
        assert tenant_db.require_tenant_context(str(tenant.pk)) == tenant.pk
        with pytest.raises(tenant_db.TenantContextError, match="is for tenant"):
            tenant_db.require_tenant_context(other_tenant)


def test_the_all_tenants_mode_is_no_tenant_context(db):
    with tenant_db.all_tenants_context(), pytest.raises(tenant_db.TenantContextError):
        tenant_db.require_tenant_context()


def test_a_service_called_without_a_context_raises_and_writes_nothing(tenant):
    with pytest.raises(tenant_db.TenantContextError, match="no tenant context"):
        tenant_services.tenant_user_create(tenant=tenant, email="a@acme.example", name="A")
    with tenant_db.tenant_context(tenant.pk):
        assert not TenantUser.objects.exists()


def test_a_context_for_tenant_a_cannot_serve_a_service_call_for_tenant_b(tenant, other_tenant):
    with (
        tenant_db.tenant_context(tenant.pk),
        pytest.raises(tenant_db.TenantContextError, match="is for tenant"),
    ):
        tenant_services.tenant_user_create(tenant=other_tenant, email="b@b.example", name="B")
    with tenant_db.tenant_context(other_tenant.pk):
        assert not TenantUser.objects.exists()


def test_tenant_context_required_checks_the_named_argument(tenant, other_tenant):
    @tenant_db.tenant_context_required(tenant="owner")
    def service(*, owner):
        return tenant_db.current_tenant_id()

    @tenant_db.tenant_context_required
    def any_tenant():
        return tenant_db.current_tenant_id()

    with pytest.raises(tenant_db.TenantContextError):
        any_tenant()
    with tenant_db.tenant_context(tenant.pk):
        assert service(owner=tenant) == any_tenant() == tenant.pk
        with pytest.raises(tenant_db.TenantContextError):
            service(owner=other_tenant.pk)
