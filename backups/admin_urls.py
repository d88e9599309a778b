"""The backups app's staff page in the admin: the recovery-targets dashboard."""

from __future__ import annotations

from functools import partial

from django.contrib.admin import AdminSite
from django.urls import URLPattern, path

from backups import admin_views

app_name = "backups"


def admin_urls(site: AdminSite) -> list[URLPattern]:
    """Return the patterns the admin site serves under its namespace and this app's."""
    view = partial(admin_views.dashboard_view, site=site)
    # Under the backup runs' admin path, where the dashboard has always been.
    return [path("backups/backuprun/dashboard/", site.admin_view(view), name="dashboard")]
