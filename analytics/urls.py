"""The analytics app's page on a tenant's host: usage (metis.tenant_urls includes this)."""

from django.urls import path

from analytics import views

app_name = "analytics"

urlpatterns = [
    path("usage/", views.usage_view, name="usage"),
]
