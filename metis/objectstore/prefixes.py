"""The tenant prefix every tenant-owned object lives under, and the check that keeps it there."""

from __future__ import annotations

import uuid


def tenant_prefix(tenant_id: uuid.UUID | str) -> str:
    """The one prefix a tenant's objects may live under (trailing slash included)."""
    return f"tenants/{uuid.UUID(str(tenant_id))}/"


def key_belongs_to_tenant(key: str, tenant_id: uuid.UUID | str) -> bool:
    return key.startswith(tenant_prefix(tenant_id)) and ".." not in key.split("/")
