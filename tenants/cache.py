"""Cache keys that carry the tenant: set as the default cache's KEY_FUNCTION.

Inside a tenant context every key is namespaced by the tenant id, so one tenant's cached query
results can never be served to another, and a tenant's entries can be found and dropped together.
"""

from tenants import db


def make_tenant_key(key: str, key_prefix: str, version: int) -> str:
    tenant_id = db.current_tenant_id()
    scope = f"t:{tenant_id}" if tenant_id else "global"
    return f"{key_prefix}:{version}:{scope}:{key}"
