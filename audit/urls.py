"""The audit app's page on a tenant's host (metis.tenant_urls)."""

from django.urls import path

from audit import views

app_name = "audit"

urlpatterns = [path("audit/", views.audit_log_view, name="log")]
