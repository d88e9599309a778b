"""Sign-in throttling on the tenant and staff sign-in pages, counted in the real Redis."""

import pytest
from django.conf import settings
from django.test import Client

from metis.events.models import EventOutbox
from tenants import db, events
from tenants.models import LockoutScope, SignInLockout, StaffSignInLockout
from tests.conftest import host_of
from tests.factories import TEST_PASSWORD, TenantUserFactory
from tests.support import staff

ATTACKER = "198.51.100.66"
LOCKED = "Too many failed sign-ins"


def sign_in(client: Client, email: str, password: str, **extra):
    return client.post("/login/", {"email": email, "password": password}, **extra)


def error_of(response) -> str:
    return " ".join(str(e) for e in response.context["form"].non_field_errors())


def lockouts(tenant) -> list[tuple[str, str, str | None]]:
    with db.tenant_context(tenant.pk):
        rows = SignInLockout.objects.for_tenant(tenant).order_by("scope")
        return [(row.scope, row.account, row.ip_address) for row in rows]


@pytest.fixture
def bob(tenant):
    return TenantUserFactory(tenant=tenant, email="bob@acme.example")


def test_thirty_wrong_passwords_lock_the_account_and_the_address(tenant, tenant_user, bob):
    client = Client(HTTP_HOST=host_of(tenant), REMOTE_ADDR=ATTACKER)
    answers = [sign_in(client, tenant_user.email, f"wrong-{n}") for n in range(30)]
    assert [a.status_code for a in answers[:9]] == [400] * 9
    assert all(a.status_code == 429 for a in answers[9:])  # the account locked at ten
    assert LOCKED in error_of(answers[9]) and "this account" in error_of(answers[9])
    assert "your network address" in error_of(answers[-1])  # the address locked at thirty

    right = sign_in(client, tenant_user.email, TEST_PASSWORD)
    assert right.status_code == 429 and "Try again after" in error_of(right)
    assert int(right["Retry-After"]) > 10 * 60
    assert not client.get("/").context  # still signed out: the home page redirects
    # Another account from the same address: the address rule (30 failures) refuses it.
    other = sign_in(client, bob.email, TEST_PASSWORD)
    assert other.status_code == 429 and "your network address" in error_of(other)

    assert lockouts(tenant) == [
        (LockoutScope.ACCOUNT, tenant_user.email, ATTACKER),
        (LockoutScope.ADDRESS, "", ATTACKER),
    ]
    with db.tenant_context(tenant.pk):
        locked_events = EventOutbox.objects.filter(event_type=events.SIGN_IN_LOCKED)
        assert sorted(e.data["scope"] for e in locked_events) == ["account", "address"]


def test_another_address_is_refused_by_the_account_lock_alone(tenant, tenant_user, bob):
    client = Client(HTTP_HOST=host_of(tenant), REMOTE_ADDR=ATTACKER)
    for n in range(settings.SIGN_IN_ACCOUNT_FAILURES):
        sign_in(client, tenant_user.email, f"wrong-{n}")
    elsewhere = Client(HTTP_HOST=host_of(tenant), REMOTE_ADDR="203.0.113.20")
    assert sign_in(elsewhere, tenant_user.email, TEST_PASSWORD).status_code == 429
    assert sign_in(elsewhere, bob.email, TEST_PASSWORD).status_code == 302
    assert sign_in(client, bob.email, TEST_PASSWORD).status_code == 302  # below 30 failures


def test_a_lock_does_not_reveal_whether_the_account_exists(tenant, tenant_user):
    client = Client(HTTP_HOST=host_of(tenant), REMOTE_ADDR=ATTACKER)
    for email in (tenant_user.email, "nobody@acme.example"):
        answers = [
            sign_in(client, email, "wrong") for _ in range(settings.SIGN_IN_ACCOUNT_FAILURES)
        ]
        assert [a.status_code for a in answers][-2:] == [400, 429]
        assert error_of(answers[0]) == "Email or password is not right for this organisation."
        assert error_of(answers[-1]).replace("this account", "") == error_of(
            sign_in(client, email, "wrong")
        ).replace("this account", "")


def test_staff_release_the_locks_and_the_account_signs_in(tenant, tenant_user, staff_client):
    client = Client(HTTP_HOST=host_of(tenant), REMOTE_ADDR=ATTACKER)
    for n in range(settings.SIGN_IN_ADDRESS_FAILURES):
        sign_in(client, tenant_user.email, f"wrong-{n}")
    assert sign_in(client, tenant_user.email, TEST_PASSWORD).status_code == 429

    staff_client.post("/admin/tenant-context/", {"tenant": str(tenant.pk)})
    listing = staff_client.get("/admin/tenants/signinlockout/")
    assert tenant_user.email in listing.content.decode()
    with db.tenant_context(tenant.pk):
        ids = [str(pk) for pk in SignInLockout.objects.values_list("pk", flat=True)]
    released = staff_client.post(
        "/admin/tenants/signinlockout/",
        {"action": "release", "_selected_action": ids},
        follow=True,
    )
    assert "Released 2 lock(s)." in released.content.decode()
    assert sign_in(client, tenant_user.email, TEST_PASSWORD).status_code == 302
    with db.tenant_context(tenant.pk):
        assert all(row.released_by_id for row in SignInLockout.objects.all())


def test_release_needs_the_tenant_chosen(tenant, tenant_user, staff_client, other_tenant):
    client = Client(HTTP_HOST=host_of(tenant), REMOTE_ADDR=ATTACKER)
    for n in range(settings.SIGN_IN_ACCOUNT_FAILURES):
        sign_in(client, tenant_user.email, f"wrong-{n}")
    staff_client.post("/admin/tenant-context/", {"tenant": str(other_tenant.pk)})
    with db.tenant_context(tenant.pk):
        ids = [str(pk) for pk in SignInLockout.objects.values_list("pk", flat=True)]
    staff_client.post(
        "/admin/tenants/signinlockout/", {"action": "release", "_selected_action": ids}
    )
    assert sign_in(client, tenant_user.email, TEST_PASSWORD).status_code == 429


def test_behind_a_trusted_proxy_each_client_is_counted_apart(settings, tenant, tenant_user, bob):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    proxy = Client(HTTP_HOST=host_of(tenant), REMOTE_ADDR="10.0.0.5")
    for n in range(settings.SIGN_IN_ADDRESS_FAILURES):
        sign_in(proxy, f"user{n}@acme.example", "wrong", HTTP_X_FORWARDED_FOR=ATTACKER)
    attacker = sign_in(proxy, bob.email, TEST_PASSWORD, HTTP_X_FORWARDED_FOR=ATTACKER)
    assert attacker.status_code == 429
    neighbour = sign_in(proxy, bob.email, TEST_PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.20")
    assert neighbour.status_code == 302
    assert lockouts(tenant) == [(LockoutScope.ADDRESS, "", ATTACKER)]


def test_an_untrusted_peer_cannot_dodge_the_address_rule_with_a_header(tenant, bob):
    client = Client(HTTP_HOST=host_of(tenant), REMOTE_ADDR=ATTACKER)
    for n in range(settings.SIGN_IN_ADDRESS_FAILURES):
        spoofed = f"203.0.113.{n}"
        sign_in(client, f"user{n}@acme.example", "wrong", HTTP_X_FORWARDED_FOR=spoofed)
    answer = sign_in(client, bob.email, TEST_PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.99")
    assert answer.status_code == 429
    assert lockouts(tenant) == [(LockoutScope.ADDRESS, "", ATTACKER)]


def test_staff_sign_in_locks_after_ten_wrong_passwords(staff_user):
    client = Client(HTTP_HOST=settings.METIS_BASE_DOMAIN, REMOTE_ADDR=ATTACKER)
    app = staff.authenticator_app(staff_user)
    for n in range(settings.SIGN_IN_ACCOUNT_FAILURES):
        client.post("/admin/login/", {"username": "staffer", "password": f"wrong-{n}"})
    refused = client.post("/admin/login/", {"username": "staffer", "password": TEST_PASSWORD})
    assert refused.status_code == 429 and LOCKED in refused.content.decode()
    lockout = StaffSignInLockout.objects.get()
    assert (lockout.scope, lockout.account, lockout.ip_address) == ("account", "staffer", ATTACKER)

    elsewhere = Client(HTTP_HOST=settings.METIS_BASE_DOMAIN, REMOTE_ADDR="203.0.113.20")
    with pytest.raises(AssertionError):
        staff.sign_in(elsewhere, username="staffer", password=TEST_PASSWORD, app=app)


def test_wrong_second_factor_codes_count_towards_the_lock(staff_user):
    client = Client(HTTP_HOST=settings.METIS_BASE_DOMAIN, REMOTE_ADDR=ATTACKER)
    staff.authenticator_app(staff_user)
    step = client.post(
        "/admin/login/?next=/admin/", {"username": "staffer", "password": TEST_PASSWORD}
    )
    answers = [
        client.post(step["Location"], {"code": f"{n:06d}"})
        for n in range(settings.SIGN_IN_ACCOUNT_FAILURES)
    ]
    assert answers[-1].status_code == 429 and LOCKED in answers[-1].content.decode()
    assert StaffSignInLockout.objects.get().scope == LockoutScope.ACCOUNT
