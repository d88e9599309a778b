"""Sessions under a keyed hash of the cookie (tenants.sessions), and still sessions as before."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.cache import caches
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from tenants.sessions import SessionStore, stored_key
from tests.conftest import host_of
from tests.factories import TEST_PASSWORD
from tests.support import staff


def cookie_of(client: Client) -> str:
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def in_cache(cookie: str) -> bool:
    return SessionStore(cookie).cache_key in caches["sessions"]


def in_database(cookie: str) -> bool:
    return Session.objects.filter(session_key=stored_key(cookie)).exists()


def signed_in(client: Client) -> bool:
    return client.get("/").status_code == 200


def staff_sign_in(user) -> Client:
    client = Client(HTTP_HOST=settings.METIS_BASE_DOMAIN)
    app = staff.authenticator_app(user)
    response = staff.sign_in(client, username="staffer", password=TEST_PASSWORD, app=app)
    assert response.status_code == 302, response.content
    return client


def test_session_row_is_stored_under_a_keyed_hash_of_the_cookie(tenant_client):
    cookie = cookie_of(tenant_client)
    assert not Session.objects.filter(session_key=cookie).exists()
    row = Session.objects.get(session_key=stored_key(cookie))
    assert re.fullmatch(r"[0-9a-f]{40}", row.session_key)  # 160 bits, fits varchar(40)
    # Keyed: a plain digest of the cookie (which anyone could compute) is not the key.
    assert row.session_key != hashlib.sha256(cookie.encode()).hexdigest()[:40]
    assert cookie not in row.session_data
    assert in_cache(cookie)
    assert cookie not in SessionStore(cookie).cache_key


def test_stored_key_depends_on_the_secret_key(settings):
    cookie = "a" * 32
    before = stored_key(cookie)
    settings.SECRET_KEY = "another-secret-key-entirely"
    assert stored_key(cookie) != before


def test_staff_sign_in_through_the_admin_is_stored_hashed_too(staff_user):
    client = staff_sign_in(staff_user)
    cookie = cookie_of(client)
    assert client.get("/admin/").status_code == 200
    assert in_database(cookie) and in_cache(cookie)
    assert not Session.objects.filter(session_key=cookie).exists()


def test_session_lasts_24_hours(tenant_client):
    row = Session.objects.get(session_key=stored_key(cookie_of(tenant_client)))
    remaining = row.expire_date - timezone.now()
    assert timedelta(hours=24) - timedelta(minutes=1) < remaining <= timedelta(hours=24)
    assert tenant_client.cookies[settings.SESSION_COOKIE_NAME]["max-age"] == 24 * 60 * 60


def test_session_survives_losing_its_redis_copy(tenant_client):
    cookie = cookie_of(tenant_client)
    # Only this session's entry: the Redis database is shared with other test runs.
    caches["sessions"].delete(SessionStore(cookie).cache_key)
    assert not in_cache(cookie)
    assert signed_in(tenant_client)  # read back from PostgreSQL
    assert in_cache(cookie)  # and cached again


def test_sign_in_rotates_the_session_key(tenant, tenant_user):
    client = Client(HTTP_HOST=host_of(tenant))
    session = client.session
    session["seen"] = "before sign-in"
    session.save()
    before = cookie_of(client)
    assert in_database(before)
    client.post("/login/", {"email": tenant_user.email, "password": TEST_PASSWORD})
    after = cookie_of(client)
    assert after != before
    assert in_database(after) and not in_database(before) and not in_cache(before)
    assert signed_in(client)
    replay = Client(HTTP_HOST=host_of(tenant))
    replay.cookies[settings.SESSION_COOKIE_NAME] = before
    assert not signed_in(replay)


def test_sign_out_deletes_the_session_from_postgresql_and_redis(tenant_client, tenant):
    cookie = cookie_of(tenant_client)
    assert tenant_client.post("/logout/").status_code == 302
    assert not in_database(cookie) and not in_cache(cookie)
    replay = Client(HTTP_HOST=host_of(tenant))
    replay.cookies[settings.SESSION_COOKIE_NAME] = cookie
    assert not signed_in(replay)


def test_clearsessions_deletes_expired_hashed_sessions(db):
    expired, live = SessionStore(), SessionStore()
    expired.set_expiry(-60)
    for session in (expired, live):
        session["user"] = "someone"
        session.save()
    call_command("clearsessions")
    assert not in_database(expired.session_key)
    assert in_database(live.session_key)


def test_session_data_copied_into_another_row_is_not_a_session(tenant_client, staff_user):
    """SQL that copies a staff session's data into an attacker's own row gains nothing: the
    data is signed for its own row."""
    staff_session = staff_sign_in(staff_user)
    attacker = cookie_of(tenant_client)
    staff_data = Session.objects.get(session_key=stored_key(cookie_of(staff_session))).session_data
    Session.objects.filter(session_key=stored_key(attacker)).update(session_data=staff_data)
    caches["sessions"].delete(SessionStore(attacker).cache_key)  # as after a Redis miss
    assert SessionStore(attacker).load() == {}
    hijack = Client(HTTP_HOST=settings.METIS_BASE_DOMAIN)
    hijack.cookies[settings.SESSION_COOKIE_NAME] = attacker
    assert hijack.get("/admin/").status_code == 302


def test_async_session_api_uses_the_same_hashed_rows(db):
    async def save_then_load() -> tuple[str, str]:
        session = SessionStore()
        await session.aset("colour", "teal")
        await session.asave()
        again = SessionStore(session.session_key)
        assert await again.aexists(session.session_key)
        return session.session_key, await again.aget("colour")

    cookie, colour = async_to_sync(save_then_load)()
    assert colour == "teal"
    assert in_database(cookie)
    assert not Session.objects.filter(session_key=cookie).exists()
