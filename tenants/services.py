"""Writes on tenants and tenant users: the one path for the admin, commands, seeds and tests."""

from __future__ import annotations

from django.db import transaction

from tenants import db
from tenants.models import Tenant, TenantUser


@transaction.atomic
def tenant_create(*, name: str, subdomain: str, is_active: bool = True) -> Tenant:
    tenant = Tenant(name=name, subdomain=subdomain, is_active=is_active)
    tenant.full_clean()
    tenant.save()
    return tenant


@db.tenant_context_required(tenant="tenant")
def tenant_user_create(
    *,
    tenant: Tenant,
    email: str,
    name: str,
    password: str | None = None,
    metadata=None,
    is_admin: bool = False,
) -> TenantUser:
    """Create a user of `tenant`, inside that tenant's context (RLS checks the insert)."""
    with transaction.atomic():
        user = TenantUser(
            tenant=tenant,
            email=TenantUser.normalize_email(email),
            name=name,
            metadata=metadata or {},
            is_admin=is_admin,
        )
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.full_clean()
        user.save()
        return user
