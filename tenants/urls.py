"""The tenants app's pages on a tenant's host: home, sign in and out, team (metis.tenant_urls)."""

from django.urls import path

from tenants import views

app_name = "tenants"

urlpatterns = [
    path("", views.home_view, name="home"),
    path("login/", views.login_view, name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("team/<uuid:user_id>/", views.team_member_view, name="team-member"),
]
