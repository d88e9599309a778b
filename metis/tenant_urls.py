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
    path("csp-report/", csp_reports.csp_report_view, name="csp-report"),
]
