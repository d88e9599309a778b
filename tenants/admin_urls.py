"""The tenants app's staff pages in the admin: the tenant context and two-factor sign-in.

The sign-in steps (verify, setup) come before the admin lets anyone in, so they are not behind
`site.admin_view`; the rest are.
"""

from __future__ import annotations

from functools import partial

from django.contrib.admin import AdminSite
from django.urls import URLPattern, path
from django.views.decorators.cache import never_cache

from tenants import admin_views, staff_sign_in, two_factor

app_name = "tenants"


def admin_urls(site: AdminSite) -> list[URLPattern]:
    """Return the patterns the admin site serves under its namespace and this app's."""

    def before_sign_in(view):
        return never_cache(partial(view, site=site))

    def signed_in(view):
        return site.admin_view(partial(view, site=site))

    return [
        path(
            "tenant-context/",
            signed_in(admin_views.tenant_context_view),
            name="tenant-context",
        ),
        path(
            "two-factor/verify/",
            before_sign_in(staff_sign_in.verify_view),
            name="two-factor-verify",
        ),
        path(
            "two-factor/setup/",
            before_sign_in(staff_sign_in.setup_view),
            name="two-factor-setup",
        ),
        path(
            "two-factor/confirm/",
            signed_in(staff_sign_in.confirm_view),
            name="two-factor-confirm",
        ),
        path(
            "two-factor/",
            signed_in(two_factor.recent_second_factor_required(staff_sign_in.backup_codes_view)),
            name="two-factor",
        ),
    ]
