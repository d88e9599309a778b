"""The tenants app's staff page in the admin: choosing a tenant context (/admin/tenant-context/)."""

from __future__ import annotations

from functools import partial

from django.contrib.admin import AdminSite
from django.urls import URLPattern, path

from tenants import admin_views

app_name = "tenants"


def admin_urls(site: AdminSite) -> list[URLPattern]:
    """Return the patterns the admin site serves under its namespace and this app's."""
    view = partial(admin_views.tenant_context_view, site=site)
    return [path("tenant-context/", site.admin_view(view), name="tenant-context")]
