"""The staff admin site, with the page where staff choose whose rows they view."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from tenants import db, staff, views
from tenants.models import Tenant


class MetisAdminSite(admin.AdminSite):
    site_header = "Metis Storage"
    site_title = "Metis Storage admin"
    index_title = "Storage administration"

    def get_urls(self):
        return [
            path(
                "tenant-context/", self.admin_view(self.tenant_context_view), name="tenant_context"
            ),
            # --- DuckDB SQL workbench (analytics) ---
            path(
                "analytics/workbench/",
                self.admin_view(self.analytics_workbench_view),
                name="analytics_workbench",
            ),
            *super().get_urls(),
        ]

    def analytics_workbench_view(self, request: HttpRequest) -> HttpResponse:
        from analytics import workbench_views

        return workbench_views.workbench_view(request, site=self)

    def tenant_context_view(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST":
            choice = request.POST.get("tenant", "")
            if choice == "":
                staff.staff_scope_clear(request=request)
                messages.info(request, "You no longer view any tenant's rows.")
            elif choice == staff.ALL_TENANTS and request.user.is_superuser:
                staff.staff_scope_choose(request=request, tenant=None)
                messages.warning(request, "Viewing all tenants, read-only. This was recorded.")
            else:
                tenant = _tenant_or_none(choice)
                if tenant is None:
                    messages.error(request, "No such tenant.")
                    return redirect("admin:tenant_context")
                staff.staff_scope_choose(request=request, tenant=tenant)
                messages.success(request, f"Now viewing {tenant}. This was recorded.")
            return redirect(views.safe_next_url(request, fallback=reverse("admin:index")))
        context = {
            **self.each_context(request),
            "title": "Choose a tenant context",
            "tenants": Tenant.objects.all(),
            "next": request.GET.get("next", ""),
        }
        return TemplateResponse(request, "admin/tenant_context.html", context)

    def each_context(self, request: HttpRequest) -> dict:
        context = super().each_context(request)
        context["staff_tenant"] = getattr(request, "staff_tenant", None)
        context["staff_all_tenants"] = getattr(request, "staff_all_tenants", False)
        return context


def _tenant_or_none(choice: str) -> Tenant | None:
    try:
        return Tenant.objects.filter(pk=db.parse_tenant_id(choice)).first()
    except db.TenantContextError:
        return None
