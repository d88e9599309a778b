"""The staff admin site: its titles, the tenant-context bar and each app's staff pages.

Apps keep registering their ModelAdmins with `@admin.register` (this is the default site, through
`metis.apps.MetisAdminConfig`); an app's pages that are not a model's live in its `admin_urls.py`,
under the app's namespace inside the admin's (`admin:analytics:dashboard`).
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.urls import include, path

import analytics.admin_urls
import backups.admin_urls
import monitoring.admin_urls
import tenants.admin_urls
from tenants import staff_sign_in


class MetisAdminSite(admin.AdminSite):
    site_header = "Metis Storage"
    site_title = "Metis Storage admin"
    index_title = "Storage administration"

    def has_permission(self, request: HttpRequest) -> bool:
        # Staff who passed a password alone are not in: the session must hold a second factor.
        # (django-otp's OTPMiddleware sets `otp_device` on the user of a session that passed one.)
        verified = getattr(request.user, "otp_device", None) is not None
        return super().has_permission(request) and verified

    def login(self, request: HttpRequest, extra_context=None):
        return staff_sign_in.login_view(request, site=self)

    def get_urls(self):
        # Before the admin's own: /admin/analytics/ would otherwise be the app's model index.
        apps = (tenants.admin_urls, analytics.admin_urls, backups.admin_urls, monitoring.admin_urls)
        return [
            *(path("", include((app.admin_urls(self), app.app_name))) for app in apps),
            *super().get_urls(),
        ]

    def each_context(self, request: HttpRequest) -> dict:
        # Every admin page shows whose rows it shows (the bar in admin/base_site.html).
        context = super().each_context(request)
        context["staff_tenant"] = getattr(request, "staff_tenant", None)
        context["staff_all_tenants"] = getattr(request, "staff_all_tenants", False)
        return context
