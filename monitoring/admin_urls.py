"""The monitoring app's staff page in the admin: charts of the stored samples."""

from __future__ import annotations

from functools import partial

from django.contrib.admin import AdminSite
from django.urls import URLPattern, path

from monitoring import admin_views

app_name = "monitoring"


def admin_urls(site: AdminSite) -> list[URLPattern]:
    """Return the patterns the admin site serves under its namespace and this app's."""
    view = partial(admin_views.monitoring_view, site=site)
    return [path("monitoring/", site.admin_view(view), name="dashboard")]
