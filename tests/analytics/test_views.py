"""Dashboard pages: a tenant sees only its own events, whatever the URL says; staff by rule."""

import socket
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client

from tests.analytics.conftest import insert_events, now
from tests.factories import TEST_PASSWORD
from tests.support import staff

HOSTILE_PARAMETERS = [
    {},
    {"tenant": "{other}"},
    {"tenant": "all"},
    {"tenant": "' OR 1=1 --"},
    {"tenant": "{other}' OR tenant_id != '{other}"},
    {"tenant_id": "{other}"},
    {"start": (now() - timedelta(days=3)).date().isoformat(), "tenant": "{other}"},
]


@pytest.fixture
def two_tenants_events(clickhouse_db, tenant, other_tenant):
    def rows(tenant_id, n, event_type):
        return [
            (tenant_id, event_type, "{}", uuid.uuid4(), now() - timedelta(hours=i))
            for i in range(n)
        ]

    insert_events(rows(tenant.pk, 3, "auth.sign_in") + rows(other_tenant.pk, 7, "auth.sign_out"))


@pytest.mark.parametrize("parameters", HOSTILE_PARAMETERS)
def test_usage_page_shows_only_the_tenants_own_events(
    two_tenants_events, tenant_client, other_tenant, parameters
):
    query = {k: v.replace("{other}", str(other_tenant.pk)) for k, v in parameters.items()}
    response = tenant_client.get("/usage/", query)
    assert response.status_code == 200
    charts = response.context["charts"]
    assert charts["total_events"] == 3
    assert charts["top_event_types"]["labels"] == ["auth.sign_in"]
    assert "events_by_tenant" not in charts
    assert b"auth.sign_out" not in response.content and str(other_tenant.pk) not in response.text


def test_usage_page_needs_a_signed_in_tenant_user(two_tenants_events, tenant):
    response = Client(HTTP_HOST=f"{tenant.subdomain}.{settings.METIS_BASE_DOMAIN}").get("/usage/")
    assert response.status_code == 302 and "/login/" in response["Location"]


@pytest.mark.parametrize(
    "parameters",
    [
        {"start": "2020-01-01' OR '1'='1"},
        {"start": "2026-01-10", "end": "2026-01-01"},
        {"start": "2025-01-01", "end": "2025-12-31"},  # longer than the 31-day limit
    ],
)
def test_bad_date_range_is_a_clear_400_without_charts(
    two_tenants_events, tenant_client, parameters
):
    response = tenant_client.get("/usage/", parameters)
    assert response.status_code == 400
    assert "charts" not in response.context
    assert b"analytics-error" in response.content


@pytest.mark.committed
def test_superuser_sees_any_tenant_or_all(two_tenants_events, staff_client, tenant, other_tenant):
    def total(tenant_param):
        response = staff_client.get("/admin/analytics/", {"tenant": tenant_param})
        assert response.status_code == 200
        return response.context["charts"]["total_events"]

    assert total(str(tenant.pk)) == 3
    assert total(str(other_tenant.pk)) == 7
    assert total("all") == 10
    assert staff_client.get("/admin/analytics/", {"tenant": "' OR 1=1 --"}).status_code == 404
    assert staff_client.get("/admin/analytics/", {"tenant": str(uuid.uuid4())}).status_code == 404


def test_other_staff_see_only_the_tenant_they_chose(
    two_tenants_events, django_user_model, tenant, other_tenant
):
    helpdesk = django_user_model.objects.create_user(
        "helpdesk", password=TEST_PASSWORD, is_staff=True
    )
    client = Client(HTTP_HOST=settings.METIS_BASE_DOMAIN)
    client.force_login(helpdesk)
    staff.mark_verified(client, helpdesk)
    assert client.get("/admin/analytics/").status_code == 200  # asks to choose a tenant
    client.post("/admin/tenant-context/", {"tenant": str(tenant.pk)})

    own = client.get("/admin/analytics/")
    assert own.status_code == 200 and own.context["charts"]["total_events"] == 3
    assert client.get("/admin/analytics/", {"tenant": str(other_tenant.pk)}).status_code == 403
    assert client.get("/admin/analytics/", {"tenant": "all"}).status_code == 403


def test_dashboard_is_for_staff_only(two_tenants_events, tenant_client, tenant):
    anonymous = Client(HTTP_HOST=settings.METIS_BASE_DOMAIN)
    assert anonymous.get("/admin/analytics/").status_code == 302
    # A tenant host has no admin at all.
    assert tenant_client.get("/admin/analytics/").status_code == 404


def test_dashboard_says_so_when_clickhouse_is_down(clickhouse_db, tenant_client, settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.CLICKHOUSE_URL = f"http://default:@127.0.0.1:{port}/metis"
    response = tenant_client.get("/usage/")
    assert response.status_code == 503
    assert b"Analytics are unavailable right now" in response.content
