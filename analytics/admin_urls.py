"""The analytics app's staff pages in the admin: the dashboard and the SQL workbench."""

from __future__ import annotations

from functools import partial

from django.contrib.admin import AdminSite
from django.urls import URLPattern, path

from analytics import views, workbench_views

app_name = "analytics"


def admin_urls(site: AdminSite) -> list[URLPattern]:
    """Return the patterns the admin site serves under its namespace and this app's."""
    workbench = partial(workbench_views.workbench_view, site=site)
    return [
        path("analytics/", site.admin_view(views.staff_dashboard_view), name="dashboard"),
        path("analytics/workbench/", site.admin_view(workbench), name="workbench"),
    ]
