from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from tests.conftest import host_of

pytestmark = pytest.mark.committed

TOKEN = "s3cret-scrape-token"


@pytest.fixture
def staff_host():
    return Client(HTTP_HOST=settings.METIS_BASE_DOMAIN)


@pytest.fixture
def protected(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = ["10.20.0.0/16"]
    settings.TRUSTED_PROXIES = []


def test_metrics_refused_without_the_token(tenant_db, staff_host, protected):
    response = staff_host.get("/metrics")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"metis_" not in response.content


def test_metrics_refused_with_a_wrong_token(tenant_db, staff_host, protected):
    response = staff_host.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}x"})
    assert response.status_code == 401


def test_metrics_served_with_the_token(tenant_db, staff_host, protected):
    response = staff_host.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert b"metis_db_connections_max " in response.content


def test_metrics_served_to_an_allowed_network_without_a_token(tenant_db, staff_host, protected):
    response = staff_host.get("/metrics", REMOTE_ADDR="10.20.3.4")
    assert response.status_code == 200


def test_metrics_refused_to_an_address_outside_the_allowed_networks(
    tenant_db, staff_host, settings
):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = ["10.20.0.0/16"]
    assert staff_host.get("/metrics", REMOTE_ADDR="10.21.0.1").status_code == 403


def test_a_forwarded_address_counts_only_from_a_trusted_proxy(tenant_db, staff_host, protected):
    settings.TRUSTED_PROXIES = ["192.0.2.1"]
    forged = {"REMOTE_ADDR": "198.51.100.7", "HTTP_X_FORWARDED_FOR": "10.20.3.4"}
    assert staff_host.get("/metrics", **forged).status_code == 401
    proxied = {"REMOTE_ADDR": "192.0.2.1", "HTTP_X_FORWARDED_FOR": "10.20.3.4"}
    assert staff_host.get("/metrics", **proxied).status_code == 200


def test_nobody_is_served_when_neither_token_nor_network_is_set(tenant_db, staff_host, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = []
    assert staff_host.get("/metrics").status_code == 403


def test_metrics_not_served_on_a_tenant_host(tenant, tenant_client, protected):
    response = tenant_client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 404
    assert b"metis_" not in response.content


def test_metrics_off_is_a_404(tenant_db, staff_host, protected, settings):
    settings.METRICS_ENABLED = False
    response = staff_host.get(reverse("metrics"), headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 404


def test_tenant_pages_show_no_other_tenants_figures(tenant, other_tenant, tenant_client):
    for path in ("/", "/usage/"):
        response = tenant_client.get(path, follow=True)
        assert other_tenant.subdomain.encode() not in response.content
        assert b"metis_s3" not in response.content
    assert host_of(tenant) != host_of(other_tenant)
