"""URLs served on a tenant's host (<subdomain>.<base domain>)."""

from django.urls import include, path

from analytics import views as analytics_views
from tenants import views

urlpatterns = [
    path("", views.home_view, name="tenant-home"),
    path("login/", views.login_view, name="tenant-login"),
    path("logout/", views.logout_view, name="tenant-logout"),
    path("team/<uuid:user_id>/", views.team_member_view, name="tenant-team-member"),
    path("documents/", include("documents.urls")),
    path("", include("documents.restore_urls")),
    path("usage/", analytics_views.usage_view, name="tenant-usage"),  # analytics
]
