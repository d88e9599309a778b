"""Cache keys of tenant data carry the tenant; sessions live in the cache for 24 hours."""

import pytest
from django.core.cache import cache, caches

from tenants import db as tenant_db
from tenants.sessions import SessionStore


def test_cached_value_of_one_tenant_is_invisible_to_another(tenant, other_tenant):
    with tenant_db.tenant_context(tenant.pk):
        cache.set("dashboard", "acme numbers")
    with tenant_db.tenant_context(other_tenant.pk):
        assert cache.get("dashboard") is None
    with tenant_db.tenant_context(tenant.pk):
        assert cache.get("dashboard") == "acme numbers"
    assert cache.get("dashboard") is None  # nor outside any tenant
    with tenant_db.tenant_context(tenant.pk):
        cache.delete("dashboard")


def test_cache_key_names_the_tenant(tenant):
    with tenant_db.tenant_context(tenant.pk):
        assert str(tenant.pk) in cache.make_key("dashboard")
    assert str(tenant.pk) not in cache.make_key("dashboard")


@pytest.mark.redis
def test_redis_holds_the_key_under_the_tenant_id(tenant, settings):
    if not settings.REDIS_URL:
        pytest.skip("needs Redis (REDIS_URL)")
    from django_redis import get_redis_connection

    with tenant_db.tenant_context(tenant.pk):
        cache.set("report", 42, timeout=60)
        raw_key = cache.make_key("report")
    redis = get_redis_connection("default")
    assert redis.exists(raw_key)
    assert f"t:{tenant.pk}".encode() in raw_key.encode()
    assert 0 < redis.ttl(raw_key) <= 60
    redis.delete(raw_key)


@pytest.mark.redis
def test_session_is_cached_in_redis_for_24_hours(tenant_client, settings):
    if not settings.REDIS_URL:
        pytest.skip("needs Redis (REDIS_URL)")
    from django_redis import get_redis_connection

    cookie = tenant_client.cookies[settings.SESSION_COOKIE_NAME].value
    raw_key = caches["sessions"].make_key(SessionStore(cookie).cache_key)
    ttl = get_redis_connection("sessions").ttl(raw_key)
    assert 24 * 3600 - 60 < ttl <= 24 * 3600
