"""URLs of the staff host (bare base domain or admin host). Tenant hosts use tenants.urls."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("documents/", include("documents.urls_staff")),
]
