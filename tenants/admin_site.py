"""The staff admin site, with the page where staff choose whose rows they view."""

from __future__ import annotations

import uuid

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme

from tenants import staff
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
            *super().get_urls(),
        ]

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
                tenant = Tenant.objects.filter(pk=choice).first() if _is_uuid(choice) else None
                if tenant is None:
                    messages.error(request, "No such tenant.")
                    return redirect("admin:tenant_context")
                staff.staff_scope_choose(request=request, tenant=tenant)
                messages.success(request, f"Now viewing {tenant}. This was recorded.")
            return redirect(_safe_next(request))
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


def _safe_next(request: HttpRequest) -> str:
    next_url = request.POST.get("next", "")
    allowed = url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()})
    return next_url if next_url and allowed else reverse("admin:index")


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
