"""Export pages on a tenant's host (metis/tenant_urls.py mounts them under /exports/)."""

from django.urls import path

from privacy.exports import views

app_name = "exports"

urlpatterns = [
    path("", views.exports_view, name="list"),
    path("mine/", views.export_mine_view, name="mine"),
    path("subject/", views.export_subject_view, name="subject"),
    path("<uuid:export_id>/", views.export_detail_view, name="detail"),
    path("<uuid:export_id>/download/", views.export_download_view, name="download"),
]
