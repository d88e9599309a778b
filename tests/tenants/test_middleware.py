"""Host → tenant resolution: good hosts, unknown, inactive and malformed ones."""

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tenants import services


def get(host: str, path: str = "/login/"):
    return Client(HTTP_HOST=host).get(path)


def test_tenant_host_serves_that_tenants_login_page(tenant):
    response = get("acme.localhost:8000")
    assert response.status_code == 200
    assert b"Sign in to Acme Lending" in response.content


def test_unknown_subdomain_is_a_404_page(tenant):
    response = get("nosuch.localhost")
    assert response.status_code == 404
    assert b"No organisation here" in response.content


def test_inactive_tenant_gets_a_page_saying_so(db):
    services.tenant_create(name="Dormant Loans", subdomain="dormant", is_active=False)
    response = get("dormant.localhost")
    assert response.status_code == 403
    assert b"Dormant Loans is not active" in response.content


@pytest.mark.parametrize(
    "host",
    [
        "evil.example.com",  # not under the base domain (DisallowedHost)
        "bad_host!.localhost",
        "a..localhost",
        "deep.acme.localhost",  # only one label below the base domain
        "-acme.localhost",
        "acme.localhost:notaport",
    ],
)
def test_malformed_host_is_a_400(tenant, host):
    assert get(host).status_code == 400


def test_admin_lives_on_the_bare_host_only(tenant):
    assert get("localhost", "/admin/login/").status_code == 200
    assert get("acme.localhost", "/admin/login/").status_code == 404


def test_subdomain_match_is_case_insensitive(tenant):
    assert get("ACME.localhost").status_code == 200


# Pieces of hosts, including a full-width "a" (a homograph of acme's first letter).
HOST_CHARS = st.sampled_from([*"acmeglobx.-_:@/%0123456789ACME \t", "localhost", "\uff41"])


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(host=st.lists(HOST_CHARS, max_size=12).map("".join))
def test_no_host_header_reaches_the_wrong_tenant_or_an_error(tenant, other_tenant, host):
    response = Client(raise_request_exception=False, HTTP_HOST=host).get("/login/")
    assert response.status_code in {200, 302, 400, 404}
    if response.status_code == 200 and b"Sign in to" in response.content:
        label = host.rsplit(":", 1)[0].lower().rstrip(".").split(".")[0]
        expected = {"acme": b"Acme Lending", "globex": b"Globex Finance"}[label]
        assert b"Sign in to " + expected in response.content
