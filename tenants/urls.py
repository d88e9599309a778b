"""The tenants app's pages on a tenant's host: home, sign-in, team, passwords (tenant_urls)."""

from django.urls import path

from tenants import password_views, views

app_name = "tenants"

urlpatterns = [
    path("", views.home_view, name="home"),
    path("login/", views.login_view, name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("team/<uuid:user_id>/", views.team_member_view, name="team-member"),
    path("account/password/", password_views.password_change_view, name="password-change"),
    path("password-reset/", password_views.password_reset_request_view, name="password-reset"),
    path(
        "password-reset/sent/",
        password_views.password_reset_sent_view,
        name="password-reset-sent",
    ),
    path("password-reset/set/", password_views.password_reset_set_view, name="password-reset-set"),
    # After sent/ and set/: a token is 43 characters, so it never shadows them.
    path(
        "password-reset/<str:token>/",
        password_views.password_reset_link_view,
        name="password-reset-link",
    ),
]
