"""Request types for annotations: what TenantMiddleware adds to Django's HttpRequest.

Only for type checkers: at run time every request is a plain HttpRequest that the middleware
(tenants.middleware, tenants.staff.scope_for) gives these attributes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import HttpRequest

if TYPE_CHECKING:
    from tenants.models import Tenant, TenantUser


class MetisRequest(HttpRequest):
    """Any request the middleware has seen: `tenant` is None on the staff hosts."""

    tenant: Tenant | None
    tenant_user: TenantUser | None


class TenantRequest(MetisRequest):
    """A request on a tenant's host: the middleware resolved its tenant, or answered already."""

    tenant: Tenant


class StaffRequest(MetisRequest):
    """A request on a staff host, with the tenant scope its staff member chose (if any)."""

    staff_tenant: Tenant | None
    staff_all_tenants: bool
