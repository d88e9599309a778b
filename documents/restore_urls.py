"""Tenant-host URLs for Glacier restore; included into the tenant URLconf at merge."""

from django.urls import path

from documents import restore_views

urlpatterns = [
    path(
        "documents/<uuid:document_id>/restore/",
        restore_views.document_request_restore,
        name="document-request-restore",
    ),
]
