"""The documents app's pages on a tenant's host, under /documents/ (metis.tenant_urls)."""

from django.urls import path

from documents import restore_views, views

app_name = "documents"

urlpatterns = [
    path("", views.document_list_view, name="list"),
    path("upload/", views.document_upload_view, name="upload"),
    path("<uuid:document_id>/", views.document_detail_view, name="detail"),
    path("<uuid:document_id>/download/", views.document_download_view, name="download"),
    path("<uuid:document_id>/replace/", views.document_replace_view, name="replace"),
    path("<uuid:document_id>/delete/", views.document_delete_view, name="delete"),
    path(
        "<uuid:document_id>/restore/",
        restore_views.document_request_restore,
        name="request-restore",
    ),
    path("multipart/start/", views.multipart_start_view, name="multipart-start"),
    path("multipart/parts/", views.multipart_parts_view, name="multipart-parts"),
    path("multipart/complete/", views.multipart_complete_view, name="multipart-complete"),
    path("multipart/abort/", views.multipart_abort_view, name="multipart-abort"),
]
