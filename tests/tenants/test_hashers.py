"""Argon2 first, at OWASP's parameters; older hashes are rehashed at sign-in (tenants.hashers).

tests/conftest.py makes every test hash with MD5 for speed; these put the configured hashers
back (`configured_hashers`), since the hashers are what they test.
"""

from __future__ import annotations

import importlib

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.hashers import (
    Argon2PasswordHasher,
    PBKDF2PasswordHasher,
    identify_hasher,
    make_password,
)
from django.test import Client

from tenants import db
from tenants.hashers import MetisArgon2PasswordHasher
from tenants.models import TenantUser
from tests.conftest import host_of
from tests.factories import TEST_PASSWORD

OWASP_ARGON2 = "argon2$argon2id$v=19$m=19456,t=2,p=1$"


@pytest.fixture
def configured_hashers(settings):
    # The settings module as deployed, not the test's MD5 override.
    settings.PASSWORD_HASHERS = importlib.import_module("metis.settings").PASSWORD_HASHERS


def test_argon2_hashes_every_new_password_and_the_others_only_verify(configured_hashers, settings):
    first, *others = settings.PASSWORD_HASHERS
    assert first == "tenants.hashers.MetisArgon2PasswordHasher"
    assert "django.contrib.auth.hashers.PBKDF2PasswordHasher" in others
    assert make_password(TEST_PASSWORD).startswith(OWASP_ARGON2)


def test_the_argon2_parameters_are_owasps():
    hasher = MetisArgon2PasswordHasher()
    assert (hasher.memory_cost, hasher.time_cost, hasher.parallelism) == (19 * 1024, 2, 1)
    # The same algorithm name as Django's: any Argon2 hash verifies, whatever its parameters.
    assert hasher.algorithm == Argon2PasswordHasher.algorithm


def pbkdf2(password: str) -> str:
    # Few iterations: the test is about the upgrade, not PBKDF2's cost.
    return PBKDF2PasswordHasher().encode(password, "saltsaltsalt", iterations=1000)


def stored_password(user: TenantUser) -> str:
    with db.tenant_context(user.tenant_id):
        return TenantUser.objects.get(pk=user.pk).password


def test_tenant_sign_in_rehashes_a_pbkdf2_password_with_argon2(
    configured_hashers, tenant, tenant_user
):
    with db.tenant_context(tenant.pk):
        TenantUser.objects.filter(pk=tenant_user.pk).update(password=pbkdf2(TEST_PASSWORD))
    assert identify_hasher(stored_password(tenant_user)).algorithm == "pbkdf2_sha256"
    response = Client(HTTP_HOST=host_of(tenant)).post(
        "/login/", {"email": tenant_user.email, "password": TEST_PASSWORD}
    )
    assert response.status_code == 302
    assert stored_password(tenant_user).startswith(OWASP_ARGON2)
    response = Client(HTTP_HOST=host_of(tenant)).post(
        "/login/", {"email": tenant_user.email, "password": TEST_PASSWORD}
    )
    assert response.status_code == 302  # and the new hash signs in


def test_a_failed_sign_in_leaves_the_old_hash(configured_hashers, tenant, tenant_user):
    old = pbkdf2(TEST_PASSWORD)
    with db.tenant_context(tenant.pk):
        TenantUser.objects.filter(pk=tenant_user.pk).update(password=old)
    Client(HTTP_HOST=host_of(tenant)).post(
        "/login/", {"email": tenant_user.email, "password": "not-the-password"}
    )
    assert stored_password(tenant_user) == old


def test_argon2_at_djangos_parameters_is_rehashed_at_ours(configured_hashers, tenant, tenant_user):
    djangos = Argon2PasswordHasher().encode(TEST_PASSWORD, Argon2PasswordHasher().salt())
    assert not djangos.startswith(OWASP_ARGON2)
    with db.tenant_context(tenant.pk):
        TenantUser.objects.filter(pk=tenant_user.pk).update(password=djangos)
    response = Client(HTTP_HOST=host_of(tenant)).post(
        "/login/", {"email": tenant_user.email, "password": TEST_PASSWORD}
    )
    assert response.status_code == 302
    assert stored_password(tenant_user).startswith(OWASP_ARGON2)


def test_staff_sign_in_rehashes_a_pbkdf2_password_with_argon2(configured_hashers, staff_user):
    # Django's ModelBackend, as the admin's login form calls it.
    with db.accounts_write():  # an update sends no signal: staff accounts need the block
        type(staff_user).objects.filter(pk=staff_user.pk).update(password=pbkdf2(TEST_PASSWORD))
    assert authenticate(username=staff_user.username, password=TEST_PASSWORD) == staff_user
    staff_user.refresh_from_db()
    assert staff_user.password.startswith(OWASP_ARGON2)
