"""Dashboards: the staff one (any tenant, or all for superusers) and a tenant's usage page.

Both read one filter from the URL (start, end and, for staff, tenant) shared by every chart,
turn it into a `dashboards.Scope` and leave the SQL to analytics.dashboards.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import admin
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from analytics import clickhouse, dashboards
from tenants import db, replica
from tenants.models import Tenant
from tenants.views import tenant_login_required

ALL_TENANTS = "all"


class DashboardFilterForm(forms.Form):
    """The date range every chart shares (a tenant's page has no tenant field: the host decides)."""

    start = forms.DateField(required=False)
    end = forms.DateField(required=False)

    def clean(self):
        cleaned = super().clean()
        today = timezone.now().date()
        end = cleaned.get("end") or today
        start = cleaned.get("start") or end - timedelta(days=7)  # the spec's today() - 7
        if end < start:
            raise forms.ValidationError("The range ends before it starts.")
        if (end - start).days + 1 > settings.ANALYTICS_DASHBOARD_MAX_DAYS:
            raise forms.ValidationError(
                f"Choose at most {settings.ANALYTICS_DASHBOARD_MAX_DAYS} days."
            )
        cleaned["start"], cleaned["end"] = start, end
        return cleaned


class StaffDashboardFilterForm(DashboardFilterForm):
    tenant = forms.CharField(required=False, max_length=64)  # a tenant id, or "all"


def _render(request, template, context, *, scope, enter_context) -> HttpResponse:
    """Build the charts inside the scope's own tenant context and render them."""
    status = 200
    try:
        with enter_context():
            context["charts"] = dashboards.dashboard(scope)
    except clickhouse.ClickHouseUnavailable as exc:
        context["error"] = f"Analytics are unavailable right now ({exc}). Try again shortly."
        status = 503
    context["scope"] = scope
    return TemplateResponse(request, template, context, status=status)


@replica.replica_view
def staff_dashboard_view(request: HttpRequest) -> HttpResponse:
    """Staff: one tenant's dashboard, or (superusers) all tenants'."""
    form = StaffDashboardFilterForm(request.GET)
    context = {
        **admin.site.each_context(request),
        "title": "Analytics",
        "form": form,
        "tenants": Tenant.objects.order_by("name"),
    }
    if not form.is_valid():
        return TemplateResponse(request, "analytics/staff_dashboard.html", context, status=400)
    cleaned = form.cleaned_data
    choice = (cleaned.get("tenant") or "").strip()
    staff_tenant = getattr(request, "staff_tenant", None)
    if not choice:
        if staff_tenant is not None:
            choice = str(staff_tenant.pk)
        elif getattr(request, "staff_all_tenants", False):
            choice = ALL_TENANTS
        else:
            return TemplateResponse(request, "analytics/staff_dashboard.html", context)
    if choice == ALL_TENANTS:
        if not request.user.is_superuser:
            context["error"] = "Only superusers may view all tenants."
            return TemplateResponse(request, "analytics/staff_dashboard.html", context, status=403)
        scope = dashboards.Scope(tenant_id=None, start=cleaned["start"], end=cleaned["end"])
        context["selected"] = ALL_TENANTS
        context["title"] = "Analytics: all tenants"
        return _render(
            request,
            "analytics/staff_dashboard.html",
            context,
            scope=scope,
            enter_context=db.all_tenants_context,
        )
    try:
        tenant = Tenant.objects.get(pk=db.parse_tenant_id(choice))
    except (db.TenantContextError, Tenant.DoesNotExist):
        raise Http404("No such tenant.") from None
    # Staff other than superusers see the tenant they chose (and were audited for) only.
    if not request.user.is_superuser and (staff_tenant is None or staff_tenant.pk != tenant.pk):
        context["error"] = "Choose this tenant as your tenant context first (it is audited)."
        return TemplateResponse(request, "analytics/staff_dashboard.html", context, status=403)
    scope = dashboards.Scope(tenant_id=tenant.pk, start=cleaned["start"], end=cleaned["end"])
    context["selected"] = str(tenant.pk)
    context["tenant"] = tenant
    context["title"] = f"Analytics: {tenant.name}"
    return _render(
        request,
        "analytics/staff_dashboard.html",
        context,
        scope=scope,
        enter_context=lambda: db.tenant_context(tenant.pk),
    )


@replica.replica_view
@tenant_login_required
def usage_view(request: HttpRequest) -> HttpResponse:
    """A tenant user: the same charts, for their own tenant only (any `tenant` parameter is
    ignored: the host decides the tenant)."""
    form = DashboardFilterForm(request.GET)
    context = {"form": form}
    if not form.is_valid():
        return TemplateResponse(request, "analytics/usage.html", context, status=400)
    cleaned = form.cleaned_data
    tenant = request.tenant
    scope = dashboards.Scope(tenant_id=tenant.pk, start=cleaned["start"], end=cleaned["end"])
    return _render(
        request,
        "analytics/usage.html",
        context,
        scope=scope,
        enter_context=contextlib.nullcontext,  # the request runs in its tenant's context
    )
