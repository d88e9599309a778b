"""Privacy pages on a tenant's host (metis/tenant_urls.py mounts them under /privacy/)."""

from django.urls import path

from privacy import views

app_name = "privacy"

urlpatterns = [
    path("erasure/", views.erasure_view, name="erasure"),
    path("erasure/<uuid:request_id>/receipt/", views.erasure_receipt_view, name="receipt"),
]
