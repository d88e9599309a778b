"""The tenant's audit log page, for the tenant's administrators: paged, filtered by action,
actor and day. Reading it is itself logged (audit/middleware.py, "audit.view")."""

from __future__ import annotations

from datetime import date

from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render

from audit.models import AuditEntry
from tenants.http import TenantRequest
from tenants.views import tenant_login_required

PAGE_SIZE = 50


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


@tenant_login_required
def audit_log_view(request: TenantRequest) -> HttpResponse:
    if not request.tenant_user.is_admin:
        raise PermissionDenied("Only the organisation's administrators may read its audit log.")
    entries = AuditEntry.objects.for_tenant(request.tenant)
    filters = {key: request.GET.get(key, "").strip() for key in ("action", "actor", "day")}
    if filters["action"]:
        entries = entries.filter(action__startswith=filters["action"])
    if filters["actor"]:
        entries = entries.filter(actor_id=filters["actor"])
    if day := _day(filters["day"]):
        entries = entries.filter(created_at__date=day)
    page = Paginator(entries, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "audit/log.html", {"page": page, "filters": filters})
