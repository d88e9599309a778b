"""URLs of the staff host (bare base domain or admin host). Tenant hosts use tenants.urls."""

from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from analytics import views as analytics_views

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    # Analytics (staff dashboards), before the admin's catch-all.
    path(
        "admin/analytics/",
        admin.site.admin_view(analytics_views.staff_dashboard_view),
        name="analytics-dashboard",
    ),
    path("admin/", admin.site.urls),
]
