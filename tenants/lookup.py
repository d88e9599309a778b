"""Host → tenant through the cache: the middleware's lookup, once per request on a tenant host.

The entry is the tenant row's field values, keyed by subdomain in the `tenants` cache (whose keys
carry no tenant scope: the lookup runs before any tenant context exists). Every ORM write of a
tenant (save or delete: the admin, the services, `get_or_create`) drops the entries of its old
and new subdomain at once and again when the write commits, so the next request sees a rename
or a deactivation. Writes around the ORM (raw SQL, a database restore) are seen within
TENANT_CACHE_SECONDS. Unknown subdomains are not cached: a tenant created by any means is served
at once. With the cache unreachable every lookup is a miss (the cache ignores its errors) and
reads the row, as before the cache.
"""

from __future__ import annotations

from typing import Any

from django.core.cache import caches
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import signals

from tenants.models import Tenant


def _cache():
    return caches["tenants"]


def _key(subdomain: str) -> str:
    return f"subdomain:{subdomain}"


def tenant_for_subdomain(subdomain: str) -> Tenant | None:
    """Return the tenant serving `subdomain` (active or not), or None when there is none."""
    values = _cache().get(_key(subdomain))
    if isinstance(values, dict):
        # A field added since the entry was written is simply deferred (read on first use).
        return Tenant.from_db(DEFAULT_DB_ALIAS, list(values), list(values.values()))
    tenant = Tenant.objects.filter(subdomain=subdomain).order_by().first()
    if tenant is not None:
        fields = Tenant._meta.concrete_fields
        _cache().set(_key(subdomain), {f.attname: getattr(tenant, f.attname) for f in fields})
    return tenant


def tenant_lookup_forget(*subdomains: str | None) -> None:
    """Drop the cached lookups of `subdomains`, now and again when the transaction commits.

    The second drop closes a race: a request that read the old row before this write committed
    may have cached it after the first drop.
    """
    keys = [_key(subdomain) for subdomain in subdomains if subdomain]
    if not keys:
        return
    _cache().delete_many(keys)
    transaction.on_commit(lambda: _cache().delete_many(keys))


def _tenant_written(sender: type[Tenant], instance: Tenant, **kwargs: Any) -> None:
    # Cache upkeep rather than business logic, so a signal: it then covers every ORM write of a
    # tenant, including the admin's and get_or_create's, without each caller remembering it.
    tenant_lookup_forget(instance.subdomain, instance.stored_subdomain)


def receivers_connect() -> None:
    """Drop a tenant's cached lookups whenever the ORM saves or deletes it."""
    signals.post_save.connect(_tenant_written, sender=Tenant, dispatch_uid="tenant_lookup_save")
    signals.post_delete.connect(_tenant_written, sender=Tenant, dispatch_uid="tenant_lookup_delete")
