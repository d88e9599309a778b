"""URLs served on a tenant's host (<subdomain>.<base domain>): each app's own `urls.py`.

TenantMiddleware sets this URLconf (settings.TENANT_URLCONF) on tenant requests; the staff host
uses metis.urls.
"""

from django.urls import include, path

from metis import csp_reports

urlpatterns = [
    path("", include("tenants.urls")),
    path("documents/", include("documents.urls")),
    path("", include("analytics.urls")),
    path("", include("audit.urls")),
    path("exports/", include("privacy.exports.urls")),
    path("privacy/", include("privacy.urls")),
    path("csp-report/", csp_reports.csp_report_view, name="csp-report"),
]

# Error pages in the host's style (metis/errors.py).
handler400 = "metis.errors.bad_request"
handler403 = "metis.errors.permission_denied"
handler404 = "metis.errors.page_not_found"
handler500 = "metis.errors.server_error"
