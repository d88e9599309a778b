"""Client addresses: X-Forwarded-For counts only from a trusted proxy, as far as it reaches."""

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import RequestFactory

from documents.models import DocumentAccess
from tenants import client_ip, db
from tenants.models import StaffTenantAccess
from tests.documents.conftest import pdf_bytes, uploaded

PROXY = "10.0.0.5"


def resolve(remote_addr: str, forwarded_for: str | None = None) -> str | None:
    extra = {"HTTP_X_FORWARDED_FOR": forwarded_for} if forwarded_for is not None else {}
    request = RequestFactory().get("/", REMOTE_ADDR=remote_addr, **extra)
    return client_ip.client_ip(request)


@pytest.fixture
def trusted_proxy(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/24", "2001:db8::/32"]


def test_without_trusted_proxies_the_header_is_ignored(settings):
    settings.TRUSTED_PROXIES = []
    assert resolve("203.0.113.9", "198.51.100.7") == "203.0.113.9"


def test_from_an_untrusted_peer_a_spoofed_chain_is_ignored(trusted_proxy):
    # The attacker names a trusted proxy inside the header; only the real peer counts.
    assert resolve("203.0.113.9", f"198.51.100.7, {PROXY}") == "203.0.113.9"


def test_from_a_trusted_proxy_the_client_is_the_forwarded_address(trusted_proxy):
    assert resolve(PROXY, "198.51.100.7") == "198.51.100.7"


def test_a_client_cannot_prepend_its_own_choice(trusted_proxy):
    # The client sent "X-Forwarded-For: 1.2.3.4"; our proxy appended the real address.
    assert resolve(PROXY, "1.2.3.4, 198.51.100.7") == "198.51.100.7"


def test_a_chain_of_trusted_proxies_is_walked_to_the_first_untrusted_hop(trusted_proxy):
    assert resolve(PROXY, "198.51.100.7, 10.0.0.9, 2001:db8::1") == "198.51.100.7"
    assert resolve("2001:db8::2", "[2001:db8:1::5]:443") == "2001:db8:1::5"


def test_a_malformed_chain_from_our_proxy_is_not_believed_in_part(trusted_proxy):
    assert resolve(PROXY, "198.51.100.7, not-an-address") == PROXY


def test_a_bad_trusted_proxies_entry_fails_the_start_up_check(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.300/24"]
    with pytest.raises(SystemCheckError, match=r"tenants\.E013"):
        call_command("check")


def test_the_staff_audit_row_records_the_forwarded_client(trusted_proxy, staff_client, tenant):
    staff_client.post(
        "/admin/tenant-context/",
        {"tenant": str(tenant.pk)},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR="198.51.100.7",
    )
    staff_client.post(
        "/admin/tenant-context/",
        {"tenant": str(tenant.pk)},
        REMOTE_ADDR="203.0.113.9",
        HTTP_X_FORWARDED_FOR="198.51.100.7",
    )
    addresses = list(StaffTenantAccess.objects.order_by("at").values_list("ip_address", flat=True))
    assert addresses == ["198.51.100.7", "203.0.113.9"]


def test_the_document_access_row_records_the_forwarded_client(
    trusted_proxy, s3_bucket, tenant_client, tenant
):
    tenant_client.post(
        "/documents/upload/",
        {"document_type": "bank-statement", "file": uploaded(pdf_bytes(), "s.pdf")},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR="1.2.3.4, 198.51.100.7",
    )
    with db.tenant_context(tenant.pk):
        access = DocumentAccess.objects.for_tenant(tenant).get()
    assert access.ip_address == "198.51.100.7"
