"""Passwords: Django's validators on every form that sets one, the tenant change page, and
sessions rotated at sign-in and cut when a password changes (tenants.passwords, tenants.auth)."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth import password_validation
from django.test import Client

from metis.events.models import EventOutbox
from tenants import db, events
from tenants.models import TenantUser
from tenants.sessions import SessionStore
from tests.conftest import host_of
from tests.factories import TEST_PASSWORD
from tests.support import staff

NEW_PASSWORD = "plum-orbit-canvas-42"
# Each refused by one of Django's validators, with the message it shows.
WEAK_PASSWORDS = {
    "short": ("short-pw-1", "This password is too short. It must contain at least 12 characters."),
    "common": ("password1234", "This password is too common."),
    "numeric": ("948372615048", "This password is entirely numeric."),
}
USERS = "/admin/tenants/tenantuser/"


def cookie_of(client: Client) -> str:
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def signed_in(client: Client) -> bool:
    """Whether the client's session still signs in its tenant user."""
    return client.get("/").status_code == 200


def sign_in(tenant, email: str, password: str = TEST_PASSWORD) -> Client:
    client = Client(HTTP_HOST=host_of(tenant))
    response = client.post("/login/", {"email": email, "password": password})
    assert response.status_code == 302, response.content
    return client


def staff_authenticated(client: Client) -> bool:
    """Whether the client's session still authenticates its staff member."""
    return client.get("/admin/").wsgi_request.user.is_authenticated


def change(client: Client, old: str = TEST_PASSWORD, new: str = NEW_PASSWORD, again=None):
    return client.post(
        "/account/password/",
        {
            "old_password": old,
            "new_password1": new,
            "new_password2": new if again is None else again,
        },
    )


def choose(client: Client, tenant) -> None:
    client.post("/admin/tenant-context/", {"tenant": str(tenant.pk)})


# --- Settings ------------------------------------------------------------------------------------


def test_all_four_validators_run_with_a_minimum_of_twelve():
    validators = {
        type(v).__name__: v for v in password_validation.get_default_password_validators()
    }
    assert set(validators) == {
        "UserAttributeSimilarityValidator",
        "MinimumLengthValidator",
        "CommonPasswordValidator",
        "NumericPasswordValidator",
    }
    assert validators["MinimumLengthValidator"].min_length == 12
    attributes = set(validators["UserAttributeSimilarityValidator"].user_attributes)
    assert {"username", "first_name", "last_name", "email", "name"} <= attributes


# --- The tenant change page ----------------------------------------------------------------------


def test_change_page_needs_a_signed_in_user(tenant):
    response = Client(HTTP_HOST=host_of(tenant)).get("/account/password/")
    assert response.status_code == 302 and response.url.startswith("/login/")


def test_nav_links_to_the_change_page(tenant_client):
    assert b'href="/account/password/">Password</a>' in tenant_client.get("/").content


def test_change_sets_the_password(tenant, tenant_user, tenant_client):
    response = change(tenant_client)
    assert response.status_code == 302 and response.url == "/account/password/"
    assert b"Your password is changed." in tenant_client.get("/account/password/").content
    sign_in(tenant, tenant_user.email, NEW_PASSWORD)
    assert (
        Client(HTTP_HOST=host_of(tenant))
        .post("/login/", {"email": tenant_user.email, "password": TEST_PASSWORD})
        .status_code
        == 400
    )


def test_change_needs_the_current_password(tenant_client):
    response = change(tenant_client, old="not-my-password")
    assert response.status_code == 400
    assert "Your old password was entered incorrectly." in response.content.decode()


def test_guessing_the_current_password_is_throttled_like_sign_in(tenant_client, settings):
    answers = [
        change(tenant_client, old=f"guess-{n}") for n in range(settings.SIGN_IN_ACCOUNT_FAILURES)
    ]
    assert answers[-1].status_code == 400
    locked = change(tenant_client)  # the right one, now refused
    assert locked.status_code == 429
    assert "Too many failed sign-ins for this account" in locked.content.decode()


@pytest.mark.parametrize("case", sorted(WEAK_PASSWORDS))
def test_change_refuses_a_weak_password_with_djangos_message(tenant_client, case):
    password, message = WEAK_PASSWORDS[case]
    response = change(tenant_client, new=password)
    assert response.status_code == 400
    assert message in response.content.decode()


def test_change_refuses_a_password_like_the_users_email_or_name(tenant_client):
    response = change(tenant_client, new="alice@acme.example")
    assert "The password is too similar to the email." in response.content.decode()
    response = change(tenant_client, new="Alice Acme!!!")
    assert "The password is too similar to the name." in response.content.decode()


def test_change_refuses_two_different_new_passwords(tenant_client):
    response = change(tenant_client, again=NEW_PASSWORD + "x")
    assert response.status_code == 400
    assert (
        "The two password fields didn\N{RIGHT SINGLE QUOTATION MARK}t match."
        in response.content.decode()
    )


def test_change_keeps_this_session_under_a_new_key_and_cuts_the_others(
    tenant, tenant_user, tenant_client
):
    elsewhere = sign_in(tenant, tenant_user.email)
    before = cookie_of(tenant_client)
    assert change(tenant_client).status_code == 302
    assert cookie_of(tenant_client) != before
    assert signed_in(tenant_client)
    assert not signed_in(elsewhere)


def test_change_is_recorded(tenant, tenant_user, tenant_client):
    change(tenant_client)
    with db.tenant_context(tenant.pk):
        assert EventOutbox.objects.filter(
            event_type=events.PASSWORD_CHANGED, user_id=tenant_user.pk
        ).exists()


def test_a_password_keeps_its_spaces(tenant, tenant_user, tenant_client):
    # Django's password fields do not strip; the sign-in form must not either.
    assert change(tenant_client, new=f" {NEW_PASSWORD} ").status_code == 302
    sign_in(tenant, tenant_user.email, f" {NEW_PASSWORD} ")


# --- The staff admin's tenant-user form ----------------------------------------------------------


def add_tenant_user(client: Client, password: str, email: str = "new@acme.example"):
    data = {"email": email, "name": "Newton", "is_active": "on", "metadata": "{}"}
    return client.post(f"{USERS}add/", {**data, "new_password": password})


@pytest.mark.parametrize("case", sorted(WEAK_PASSWORDS))
def test_admin_add_tenant_user_refuses_a_weak_password(staff_client, tenant, case):
    password, message = WEAK_PASSWORDS[case]
    choose(staff_client, tenant)
    response = add_tenant_user(staff_client, password)
    assert response.status_code == 200  # the form again, with the errors
    assert message in response.content.decode()
    with db.tenant_context(tenant.pk):
        assert not TenantUser.objects.filter(email="new@acme.example").exists()


def test_admin_add_tenant_user_compares_with_the_email_being_saved(staff_client, tenant):
    choose(staff_client, tenant)
    response = add_tenant_user(staff_client, "newton@lender.example", "newton@lender.example")
    assert "The password is too similar to the email." in response.content.decode()


def test_admin_add_tenant_user_accepts_a_strong_password(staff_client, tenant):
    choose(staff_client, tenant)
    assert add_tenant_user(staff_client, NEW_PASSWORD).status_code == 302
    sign_in(tenant, "new@acme.example", NEW_PASSWORD)


def change_tenant_user(client: Client, user: TenantUser, password: str):
    data = {"email": user.email, "name": user.name, "is_active": "on", "metadata": "{}"}
    return client.post(f"{USERS}{user.pk}/change/", {**data, "new_password": password})


@pytest.mark.parametrize("case", sorted(WEAK_PASSWORDS))
def test_admin_change_tenant_user_refuses_a_weak_password(staff_client, tenant, tenant_user, case):
    password, message = WEAK_PASSWORDS[case]
    choose(staff_client, tenant)
    response = change_tenant_user(staff_client, tenant_user, password)
    assert response.status_code == 200
    assert message in response.content.decode()
    sign_in(tenant, tenant_user.email, TEST_PASSWORD)


def test_admin_change_without_a_password_keeps_it(staff_client, tenant, tenant_user):
    choose(staff_client, tenant)
    assert change_tenant_user(staff_client, tenant_user, "").status_code == 302
    sign_in(tenant, tenant_user.email, TEST_PASSWORD)


def test_admin_setting_a_tenant_users_password_signs_them_out(
    staff_client, tenant, tenant_user, tenant_client
):
    assert signed_in(tenant_client)
    choose(staff_client, tenant)
    assert change_tenant_user(staff_client, tenant_user, NEW_PASSWORD).status_code == 302
    assert not signed_in(tenant_client)
    sign_in(tenant, tenant_user.email, NEW_PASSWORD)


def test_admin_password_keeps_its_spaces(staff_client, tenant, tenant_user):
    # Django's password fields do not strip; the admin's and the sign-in form must not either.
    choose(staff_client, tenant)
    assert change_tenant_user(staff_client, tenant_user, f" {NEW_PASSWORD} ").status_code == 302
    sign_in(tenant, tenant_user.email, f" {NEW_PASSWORD} ")


# --- Django's staff forms: already validated, proven here ---------------------------------------


@pytest.mark.parametrize("case", sorted(WEAK_PASSWORDS))
def test_staff_user_add_refuses_a_weak_password(staff_client, staff_user_model, case):
    password, message = WEAK_PASSWORDS[case]
    response = staff_client.post(
        "/admin/auth/user/add/",
        {
            "username": "newstaff",
            "usable_password": "true",
            "password1": password,
            "password2": password,
        },
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not staff_user_model.objects.filter(username="newstaff").exists()


def test_staff_user_add_refuses_a_password_like_the_username(staff_client):
    password = "newstaff-2024"
    response = staff_client.post(
        "/admin/auth/user/add/",
        {
            "username": "newstaff",
            "usable_password": "true",
            "password1": password,
            "password2": password,
        },
    )
    assert "The password is too similar to the username." in response.content.decode()


@pytest.fixture
def other_staff(staff_user_model):
    return staff_user_model.objects.create_user("colleague", password=TEST_PASSWORD, is_staff=True)


def staff_password_set(client: Client, user, password: str):
    return client.post(
        f"/admin/auth/user/{user.pk}/password/",
        {"usable_password": "true", "password1": password, "password2": password},
    )


@pytest.mark.parametrize("case", sorted(WEAK_PASSWORDS))
def test_staff_admin_password_set_refuses_a_weak_password(staff_client, other_staff, case):
    password, message = WEAK_PASSWORDS[case]
    response = staff_password_set(staff_client, other_staff, password)
    assert response.status_code == 200
    assert message in response.content.decode()
    other_staff.refresh_from_db()
    assert other_staff.check_password(TEST_PASSWORD)


def test_staff_admin_password_set_signs_that_staff_member_out(staff_client, other_staff):
    theirs = Client(HTTP_HOST=settings.METIS_BASE_DOMAIN)
    theirs.force_login(other_staff)
    assert staff_authenticated(theirs)
    assert staff_password_set(staff_client, other_staff, NEW_PASSWORD).status_code == 302
    assert not staff_authenticated(theirs)


def own_password_change(client: Client, new: str):
    return client.post(
        "/admin/password_change/",
        {"old_password": TEST_PASSWORD, "new_password1": new, "new_password2": new},
    )


@pytest.mark.parametrize("case", sorted(WEAK_PASSWORDS))
def test_staff_own_password_change_refuses_a_weak_password(staff_client, staff_user, case):
    password, message = WEAK_PASSWORDS[case]
    response = own_password_change(staff_client, password)
    assert response.status_code == 200
    assert message in response.content.decode()
    staff_user.refresh_from_db()
    assert staff_user.check_password(TEST_PASSWORD)


def test_staff_own_password_change_keeps_this_session_and_cuts_the_others(staff_client, staff_user):
    elsewhere = Client(HTTP_HOST=settings.METIS_BASE_DOMAIN)
    elsewhere.force_login(staff_user)
    assert staff_authenticated(elsewhere)
    response = own_password_change(staff_client, NEW_PASSWORD)
    assert response.status_code == 302 and response.url == "/admin/password_change/done/"
    assert staff_authenticated(staff_client)
    assert not staff_authenticated(elsewhere)


# --- Sign-in rotates the session key -------------------------------------------------------------


def with_anonymous_session(client: Client) -> str:
    """Give the client a session before it signs in, as a fixation attempt would; return its key."""
    session = client.session  # created and saved, its cookie set on the client
    session["seen"] = True
    session.save()
    return cookie_of(client)


def test_tenant_sign_in_rotates_the_session_key(tenant, tenant_user):
    client = Client(HTTP_HOST=host_of(tenant))
    before = with_anonymous_session(client)
    response = client.post("/login/", {"email": tenant_user.email, "password": TEST_PASSWORD})
    assert response.status_code == 302
    assert cookie_of(client) != before
    assert not SessionStore().exists(before)
    assert signed_in(client)


def test_staff_sign_in_rotates_the_session_key(staff_user):
    # Both steps (password, then the app's code) sign in through tests.support.staff.
    client = Client(HTTP_HOST=settings.METIS_BASE_DOMAIN)
    before = with_anonymous_session(client)
    app = staff.authenticator_app(staff_user)
    response = staff.sign_in(client, username="staffer", password=TEST_PASSWORD, app=app)
    assert response.status_code == 302
    assert cookie_of(client) != before
    assert not SessionStore().exists(before)
    assert staff_authenticated(client)
