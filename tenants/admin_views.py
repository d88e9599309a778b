"""The admin page where staff choose whose rows they view (tenants.admin_urls serves it)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin import AdminSite
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse

from tenants import db, staff, two_factor, views
from tenants.models import Tenant


def tenant_context_view(request: HttpRequest, *, site: AdminSite) -> HttpResponse:
    if request.method == "POST":
        choice = request.POST.get("tenant", "")
        if choice == "":
            staff.staff_scope_clear(request=request)
            messages.info(request, "You no longer view any tenant's rows.")
        elif (
            choice == staff.ALL_TENANTS
            and request.user.is_superuser
            and not two_factor.recently_confirmed(request)
        ):
            # Every tenant's rows: only on a second factor confirmed minutes ago.
            return redirect(two_factor.confirm_url(request, next_url=request.path))
        elif choice == staff.ALL_TENANTS and request.user.is_superuser:
            staff.staff_scope_choose(request=request, tenant=None)
            messages.warning(request, "Viewing all tenants, read-only. This was recorded.")
        else:
            tenant = _tenant_or_none(choice)
            if tenant is None:
                messages.error(request, "No such tenant.")
                return redirect("admin:tenants:tenant-context")
            staff.staff_scope_choose(request=request, tenant=tenant)
            messages.success(request, f"Now viewing {tenant}. This was recorded.")
        return redirect(views.safe_next_url(request, fallback=reverse("admin:index")))
    context = {
        **site.each_context(request),
        "title": "Choose a tenant context",
        "tenants": Tenant.objects.all(),
        "next": request.GET.get("next", ""),
    }
    return TemplateResponse(request, "admin/tenant_context.html", context)


def _tenant_or_none(choice: str) -> Tenant | None:
    try:
        return Tenant.objects.filter(pk=db.parse_tenant_id(choice)).first()
    except db.TenantContextError:
        return None
