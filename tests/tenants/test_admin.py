"""Staff admin: tenant rows only under an explicit, audited tenant choice."""

import pytest
from django.test import Client

from tenants.models import StaffTenantAccess
from tests.factories import TEST_PASSWORD
from tests.support import staff

USERS = "/admin/tenants/tenantuser/"


def choose(client: Client, value: str):
    return client.post("/admin/tenant-context/", {"tenant": value})


def test_staff_see_tenants_without_choosing(staff_client, tenant, other_tenant):
    content = staff_client.get("/admin/tenants/tenant/").content
    assert b"Acme Lending" in content and b"Globex Finance" in content


def test_without_a_tenant_context_no_tenant_rows_are_listed(
    staff_client, tenant_user, other_tenant_user
):
    content = staff_client.get(USERS).content
    assert b"alice@acme.example" not in content
    assert b"gina@globex.example" not in content
    assert b"Choose a tenant context" in content


def test_under_tenant_a_only_as_rows_are_listed(staff_client, tenant_user, other_tenant_user):
    choose(staff_client, str(tenant_user.tenant_id))
    content = staff_client.get(USERS).content
    assert b"alice@acme.example" in content
    assert b"gina@globex.example" not in content


def test_under_tenant_a_bs_row_cannot_be_opened_or_deleted(
    staff_client, tenant_user, other_tenant_user
):
    choose(staff_client, str(tenant_user.tenant_id))
    change = staff_client.get(f"{USERS}{other_tenant_user.pk}/change/", follow=True)
    assert b"gina@globex.example" not in change.content
    assert b"doesn" in change.content  # "... with ID ... doesn't exist"
    staff_client.post(f"{USERS}{other_tenant_user.pk}/delete/", {"post": "yes"})
    choose(staff_client, str(other_tenant_user.tenant_id))
    assert b"gina@globex.example" in staff_client.get(USERS).content


def test_each_choice_is_recorded_in_the_audit_trail(staff_client, staff_user, tenant):
    choose(staff_client, str(tenant.pk))
    access = StaffTenantAccess.objects.get()
    assert (access.staff, access.tenant, access.all_tenants) == (staff_user, tenant, False)


@pytest.mark.committed
def test_superuser_all_tenants_mode_is_read_only_and_audited(
    staff_client, tenant_user, other_tenant_user
):
    choose(staff_client, "all")
    content = staff_client.get(USERS).content
    assert b"alice@acme.example" in content and b"gina@globex.example" in content
    assert StaffTenantAccess.objects.get().all_tenants
    assert staff_client.get(f"{USERS}add/").status_code == 403


def test_plain_staff_cannot_choose_all_tenants(db, django_user_model, tenant_user):
    staffer = django_user_model.objects.create_user("viewer", password=TEST_PASSWORD, is_staff=True)
    client = Client(HTTP_HOST="localhost")
    client.force_login(staffer)
    staff.mark_verified(client, staffer)
    choose(client, "all")
    assert not StaffTenantAccess.objects.exists()


def test_adding_a_user_stamps_the_chosen_tenant(staff_client, tenant, other_tenant):
    choose(staff_client, str(tenant.pk))
    response = staff_client.post(
        f"{USERS}add/",
        {
            "email": "New@Acme.example",
            "name": "New",
            "is_active": "on",
            "metadata": "{}",
            "new_password": "a-long-password-1",
        },
    )
    assert response.status_code == 302, response.content
    choose(staff_client, str(tenant.pk))
    assert b"new@acme.example" in staff_client.get(USERS).content
    choose(staff_client, str(other_tenant.pk))
    assert b"new@acme.example" not in staff_client.get(USERS).content


def test_tenant_user_list_query_count_is_bounded(
    staff_client, tenant, django_assert_max_num_queries
):
    from tests.factories import TenantUserFactory

    choose(staff_client, str(tenant.pk))
    for n in range(20):
        TenantUserFactory(tenant=tenant, email=f"member{n}@acme.example")
    with django_assert_max_num_queries(12):
        response = staff_client.get(USERS)
    assert response.content.count(b"@acme.example") >= 20


def test_tenant_context_chooser_does_not_redirect_off_site(staff_client, tenant):
    response = staff_client.post(
        "/admin/tenant-context/", {"tenant": str(tenant.pk), "next": "https://evil.example/"}
    )
    assert response.url == "/admin/"
    response = staff_client.post(
        "/admin/tenant-context/", {"tenant": str(tenant.pk), "next": "/admin/tenants/tenantuser/"}
    )
    assert response.url == "/admin/tenants/tenantuser/"


def test_unknown_tenant_choice_is_refused(staff_client, tenant):
    response = staff_client.post("/admin/tenant-context/", {"tenant": "not-a-uuid"}, follow=True)
    assert b"No such tenant" in response.content
    assert not StaffTenantAccess.objects.exists()
