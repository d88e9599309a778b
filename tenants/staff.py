"""Staff access to tenant rows: only under an explicit, audited choice.

A staff member picks one tenant (or, a superuser, all tenants read-only) on the admin's
"tenant context" page. The choice is written to the audit trail and kept in the session; each
staff request then runs inside that context. With no choice, tenant tables show no rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest

from metis.events import recorder
from tenants import client_ip, db, events, two_factor
from tenants.http import StaffRequest
from tenants.models import StaffTenantAccess, Tenant

SESSION_KEY = "staff_tenant_scope"
ALL_TENANTS = "all"


def staff_scope_choose(*, request: HttpRequest, tenant: Tenant | None) -> StaffTenantAccess:
    """Record that the signed-in staff member now views `tenant`, or all tenants when None."""
    user = request.user
    if not (user.is_authenticated and user.is_staff):
        raise PermissionError("only staff choose a tenant context")
    if tenant is None and not user.is_superuser:
        raise PermissionError("only superusers may view all tenants")
    with transaction.atomic():
        access = StaffTenantAccess.objects.create(
            staff=user,
            tenant=tenant,
            all_tenants=tenant is None,
            path=request.get_full_path()[:500],
            ip_address=client_ip.client_ip(request),
        )
        if tenant is not None:  # the all-tenants choice has no one tenant: the audit row says it
            # The staff scope is an entry point: it opens the chosen tenant's context itself.
            with db.tenant_context(tenant.pk):
                recorder.record_event(
                    tenant=tenant,
                    event_type=events.STAFF_TENANT_ACCESS,
                    staff=user,
                    data={"path": access.path},
                )
    request.session[SESSION_KEY] = ALL_TENANTS if tenant is None else str(tenant.pk)
    return access


def staff_scope_clear(*, request: HttpRequest) -> None:
    request.session.pop(SESSION_KEY, None)


@contextmanager
def scope_for(request: StaffRequest) -> Iterator[None]:
    """Run a staff-host request in the tenant context its staff member chose, if any."""
    request.staff_tenant = None
    request.staff_all_tenants = False
    user = request.user
    choice = request.session.get(SESSION_KEY) if user.is_authenticated and user.is_staff else None
    if choice == ALL_TENANTS and not two_factor.recently_confirmed(request):
        # All-tenants mode lasts as long as the second factor is recent, not as the session.
        staff_scope_clear(request=request)
        messages.info(request, "All-tenants mode ended: confirm your second factor to enter again.")
        choice = None
    if choice == ALL_TENANTS and user.is_superuser:
        request.staff_all_tenants = True
        with db.all_tenants_context():
            yield
        return
    tenant = Tenant.objects.filter(pk=choice).first() if choice and choice != ALL_TENANTS else None
    if tenant is None:
        yield
        return
    request.staff_tenant = tenant
    with db.tenant_context(tenant.pk, atomic=False):
        yield
