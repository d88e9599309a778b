"""The tenant admin's erasure page: ask for one's own tenant's subject, see the requests with
their held parts, download each receipt; others refused, other tenants' ids unseen."""

from __future__ import annotations

import json

from django.test import Client

from privacy import services
from privacy.models import ErasureRequest, ErasureStatus
from tenants import db
from tests.conftest import host_of
from tests.factories import TEST_PASSWORD
from tests.privacy.conftest import make_user
from tests.privacy.test_exports import client_for

PAGE = "/privacy/erasure/"


def requests_of(tenant) -> list[ErasureRequest]:
    with db.tenant_context(tenant.pk):
        return list(ErasureRequest.objects.for_tenant(tenant.pk))


def test_a_plain_user_is_refused_the_page_and_the_request(tenant, tenant_client):
    assert tenant_client.get(PAGE).status_code == 403
    response = tenant_client.post(PAGE, {"kind": "borrower", "subject_ref": "CUST-1"})
    assert response.status_code == 403
    assert requests_of(tenant) == []


def test_a_tenant_admin_asks_for_a_borrower_and_a_user(
    tenant, tenant_user, django_assert_max_num_queries
):
    admin = make_user(tenant, "boss@acme.example", is_admin=True)
    client = client_for(admin)
    assert client.get(PAGE).status_code == 200
    assert client.post(PAGE, {"kind": "borrower", "subject_ref": "CUST-1"}).status_code == 302
    assert client.post(PAGE, {"kind": "user", "email": tenant_user.email}).status_code == 302
    asked = {(r.kind, r.ref, r.requested_by_user_id) for r in requests_of(tenant)}
    assert asked == {("borrower", "CUST-1", admin.pk), ("user", str(tenant_user.pk), admin.pk)}
    with django_assert_max_num_queries(12):  # bounded: not one query per request listed
        page = client.get(PAGE).content.decode()
    assert "CUST-1" in page and tenant_user.email in page and "Awaiting approval" in page


def test_a_malformed_reference_or_another_tenants_user_is_a_400(tenant, other_tenant_user):
    client = client_for(make_user(tenant, "boss@acme.example", is_admin=True))
    bad = client.post(PAGE, {"kind": "borrower", "subject_ref": "no spaces!"})
    assert bad.status_code == 400
    assert 'id="id_subject_ref_error"' in bad.content.decode()
    foreign = client.post(PAGE, {"kind": "user", "email": other_tenant_user.email})
    assert foreign.status_code == 400
    assert "No user of this organisation has this email." in foreign.content.decode()
    assert requests_of(tenant) == []


def test_the_page_shows_held_parts_and_the_receipt_downloads(tenant, staff_user):
    admin = make_user(tenant, "boss@acme.example", is_admin=True)
    held = {
        "document_id": "d1",
        "document_type": "pan",
        "rule": "KYC: 5 years",
        "until": "2031-03-31",
    }
    receipt = {"runs": [{"erased": {"s3": {"versions": 2}}, "held": [held]}]}
    with db.tenant_context(tenant.pk):
        erasure = services.erasure_request_create(
            tenant=tenant, kind="borrower", ref="CUST-7", user=admin
        )
        ErasureRequest.objects.filter(pk=erasure.pk).update(
            status=ErasureStatus.HELD, receipt=receipt
        )
    client = client_for(admin)
    page = client.get(PAGE).content.decode()
    assert "KYC: 5 years (until 2031-03-31)" in page
    assert f"{PAGE}{erasure.pk}/receipt/" in page
    response = client.get(f"{PAGE}{erasure.pk}/receipt/")
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    assert json.loads(response.content) == receipt


def test_another_tenants_request_is_a_404_and_a_plain_user_gets_no_receipt(
    tenant, tenant_client, other_tenant, staff_user
):
    with db.tenant_context(other_tenant.pk):
        theirs = services.erasure_request_create(
            tenant=other_tenant, kind="borrower", ref="G-1", staff=staff_user
        )
    with db.tenant_context(tenant.pk):
        mine = services.erasure_request_create(
            tenant=tenant, kind="borrower", ref="A-1", staff=staff_user
        )
    admin = client_for(make_user(tenant, "boss@acme.example", is_admin=True))
    assert admin.get(f"{PAGE}{theirs.pk}/receipt/").status_code == 404
    assert "G-1" not in admin.get(PAGE).content.decode()
    assert tenant_client.get(f"{PAGE}{mine.pk}/receipt/").status_code == 403


def test_asking_needs_the_csrf_token(tenant):
    admin = make_user(tenant, "boss@acme.example", is_admin=True)
    client = Client(HTTP_HOST=host_of(tenant), enforce_csrf_checks=True)
    page = client.get("/login/")
    token = page.cookies["csrftoken"].value
    signed_in = client.post(
        "/login/",
        {"email": admin.email, "password": TEST_PASSWORD, "csrfmiddlewaretoken": token},
    )
    assert signed_in.status_code == 302
    response = client.post(PAGE, {"kind": "borrower", "subject_ref": "CUST-1"})
    assert response.status_code == 403
    assert requests_of(tenant) == []
