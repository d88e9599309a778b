"""Error pages: 400, 403, 404 and 500 in the tenant pages' style on a tenant's host and in the
admin's on the staff host, under the Content Security Policy, and a 500 page that needs no
database."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.test import Client, RequestFactory
from django.urls import get_resolver

from tests.conftest import host_of
from tests.metis import error_urls
from tests.metis.test_csp_pages import inline_code

TENANT_LOOK = "/static/tenants/tenants.css"
ADMIN_LOOK = "/static/admin/css/base.css"


def assert_error_page(response, status: int, title: str, look: str) -> str:
    html = response.content.decode()
    assert response.status_code == status
    assert f"<h1>{title}</h1>" in html
    assert f"Error {status}" in html
    assert look in html
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert inline_code(html) == []
    return html


@pytest.fixture
def failing_urls(settings):
    settings.ROOT_URLCONF = error_urls.Staff
    settings.TENANT_URLCONF = error_urls.Tenant


def test_tenant_host_404_is_the_tenant_page_with_its_header(tenant_client, tenant):
    html = assert_error_page(
        tenant_client.get("/no-such-page/"), 404, "Page not found", TENANT_LOOK
    )

    assert tenant.name in html
    assert "Signed in as" in html  # the header of the signed-in pages
    assert ADMIN_LOOK not in html


def test_staff_host_404_is_an_admin_page(staff_client):
    html = assert_error_page(
        staff_client.get("/admin/no-such-page/"), 404, "Page not found", ADMIN_LOOK
    )

    assert "Metis Storage" in html
    assert TENANT_LOOK not in html


def test_tenant_host_400_for_a_request_with_too_many_fields(tenant):
    client = Client(HTTP_HOST=host_of(tenant))
    fields = {f"field{n}": "x" for n in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1)}

    html = assert_error_page(client.post("/login/", fields), 400, "Bad request", TENANT_LOOK)

    assert tenant.name in html
    assert "The form has more fields than this page accepts. Send fewer." in html


HOST_MESSAGE = "This site does not serve the host name in the request (the Host header)."


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",  # not in ALLOWED_HOSTS
        "bad host!",  # not a host name at all
        "acme.localhost:port",  # a port that is not a number
        "-acme.localhost",  # allowed by the wildcard, but no tenant name (tenant middleware)
        "a.b.localhost",  # two labels where a tenant has one
    ],
)
def test_a_malformed_or_unknown_host_gets_the_styled_400_saying_what_to_fix(db, host):
    response = Client(HTTP_HOST=host).get("/login/")

    html = assert_error_page(response, 400, "Bad request", TENANT_LOOK)
    assert HOST_MESSAGE in html
    assert f"&lt;name&gt;.{settings.METIS_BASE_DOMAIN}" in html


@pytest.mark.parametrize("host", ["bad host!", "-acme.localhost"])
def test_a_malformed_host_on_a_json_endpoint_gets_json(db, host):
    client = Client(HTTP_HOST=host)
    api = client.post("/documents/multipart/start/", "{}", content_type="application/json")
    accepting = client.get("/documents/", HTTP_ACCEPT="application/json")

    for response in (api, accepting):
        assert response.status_code == 400
        assert response.json()["error"].startswith(HOST_MESSAGE)


def test_tenant_host_403_for_a_form_without_its_csrf_token(tenant, tenant_user):
    client = Client(HTTP_HOST=host_of(tenant), enforce_csrf_checks=True)

    html = assert_error_page(
        client.post("/login/", {"email": tenant_user.email, "password": "x"}),
        403,
        "Forbidden",
        TENANT_LOOK,
    )

    assert "reload the page and send the form again" in html


def test_staff_host_403_for_a_form_without_its_csrf_token(db):
    client = Client(HTTP_HOST=settings.METIS_BASE_DOMAIN, enforce_csrf_checks=True)

    assert_error_page(client.post("/admin/login/", {}), 403, "Forbidden", ADMIN_LOOK)


def test_permission_denied_on_each_host(failing_urls, tenant_client, staff_client):
    assert_error_page(tenant_client.get("/forbidden/"), 403, "Forbidden", TENANT_LOOK)
    html = assert_error_page(staff_client.get("/forbidden/"), 403, "Forbidden", ADMIN_LOOK)

    assert "not for you" not in html  # the exception's text is for the log, not the visitor


def test_server_error_on_each_host(failing_urls, tenant_client, staff_client, tenant):
    tenant_client.raise_request_exception = False
    staff_client.raise_request_exception = False

    html = assert_error_page(tenant_client.get("/broken/"), 500, "Server error", TENANT_LOOK)
    assert tenant.name in html
    assert "Signed in as" not in html  # no session, no form: nothing that could query
    html = assert_error_page(staff_client.get("/broken/"), 500, "Server error", ADMIN_LOOK)
    assert "a bug" not in html


@pytest.mark.parametrize("urlconf", ["metis.urls", "metis.tenant_urls"])
def test_the_500_page_renders_without_the_database(
    urlconf, tenant, tenant_user, django_db_blocker, settings
):
    handler = get_resolver(urlconf).resolve_error_handler(500)
    host = host_of(tenant) if urlconf == "metis.tenant_urls" else settings.METIS_BASE_DOMAIN
    request = RequestFactory(HTTP_HOST=host).get("/documents/")
    request.COOKIES[settings.SESSION_COOKIE_NAME] = "a-session-key"
    # What the middleware had set up: a session, a user and messages, each read lazily.
    for middleware in (SessionMiddleware, AuthenticationMiddleware, MessageMiddleware):
        middleware(lambda request: None).process_request(request)
    if urlconf == "metis.tenant_urls":
        # What TenantMiddleware had loaded before the view failed.
        request.tenant, request.tenant_user = tenant, tenant_user

    with django_db_blocker.block():  # any query would raise here
        response = handler(request)

    assert response.status_code == 500
    assert (
        TENANT_LOOK if urlconf == "metis.tenant_urls" else ADMIN_LOOK
    ) in response.content.decode()
