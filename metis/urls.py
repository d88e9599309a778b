"""URLs of the staff host (bare base domain or admin host). Tenant hosts use metis.tenant_urls.

The admin site (metis.admin_site) serves each app's staff pages inside /admin/.
"""

from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from metis import csp_reports
from monitoring import views as monitoring_views

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("csp-report/", csp_reports.csp_report_view, name="csp-report"),
    path("metrics", monitoring_views.metrics_view, name="metrics"),
]

# Error pages in the host's style (metis/errors.py).
handler400 = "metis.errors.bad_request"
handler403 = "metis.errors.permission_denied"
handler404 = "metis.errors.page_not_found"
handler500 = "metis.errors.server_error"
