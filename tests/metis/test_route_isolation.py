"""Every route of a tenant's host, attacked with another tenant's ids, tickets and cookies.

The routes are walked from the tenant URLconf, so a page added later is attacked too. Tenant A's
administrator (who may see the most) aims every route at tenant B's documents, users, exports,
erasure requests and upload tickets, by GET and by POST, and uses A's session on B's host.
Nothing of B may come back (its markers, its key prefix), and B's rows must be as they were.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from documents import multipart
from documents.models import Document, DocumentVersion
from metis.objectstore import store
from privacy import services as privacy_services
from privacy.exports import services as export_services
from privacy.exports.models import Export, ExportScope
from privacy.models import ErasureRequest
from tenants import db
from tenants.models import TenantUser
from tests.analytics.conftest import chdb_dir, clickhouse_db
from tests.conftest import host_of
from tests.documents.conftest import pdf_bytes, upload
from tests.factories import TEST_PASSWORD, TenantUserFactory

__all__ = ["chdb_dir", "clickhouse_db"]

pytestmark = pytest.mark.usefixtures("s3_bucket", "clickhouse_db")

# What only B's pages could show: its file name and its admin's name. (The attacker posts B's
# subject reference and email, so a form echoing them back is no leak.)
B_MARKERS = ("b-secret-statement", "Bsecretname")
PUBLIC = ("login", "password-reset", "csp-report")
PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")


def tenant_routes() -> list[str]:
    """Every route of the tenant URLconf, as a pattern string ('documents/<uuid:document_id>/')."""

    def walk(patterns, prefix: str):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern)

    return sorted(set(walk(get_resolver("metis.tenant_urls").url_patterns, "")))


def signed_in(user) -> Client:
    client = Client(HTTP_HOST=host_of(user.tenant))
    response = client.post("/login/", {"email": user.email, "password": TEST_PASSWORD})
    assert response.status_code == 302, response.content
    return client


@pytest.fixture
def b_world(other_tenant):
    """Tenant B's admin, a document with two versions, an export, an erasure request and an
    open multipart upload: what A's admin aims at."""
    admin = TenantUserFactory(
        tenant=other_tenant, email="b-admin@b.example", name="Bsecretname", is_admin=True
    )
    document = upload(
        other_tenant, name="b-secret-statement.pdf", subject_ref="B-SECRET-REF", user=admin
    )
    content = pdf_bytes()
    with db.tenant_context(other_tenant.pk):
        export = export_services.export_request(
            requested_by=admin, scope=ExportScope.BORROWER, subject_ref="B-SECRET-REF"
        )
        erasure = privacy_services.erasure_request_create(
            tenant=other_tenant, kind="borrower", ref="B-SECRET-REF", user=admin
        )
        ticket = multipart.multipart_upload_start(
            tenant=other_tenant,
            document_type="bank-statement",
            filename="b-secret-statement-2.pdf",
            size_bytes=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
            content_type="application/pdf",
        ).ticket
    return {
        "tenant": other_tenant,
        "admin": admin,
        "ids": [str(admin.pk), str(document.pk), str(export.pk), str(erasure.pk)],
        "ticket": ticket,
    }


def b_state(tenant) -> dict:
    with db.tenant_context(tenant.pk):
        return {
            "documents": list(
                Document.objects.for_tenant(tenant).values_list("pk", "deleted_at", "metadata")
            ),
            "versions": DocumentVersion.objects.for_tenant(tenant).count(),
            "users": list(TenantUser.objects.for_tenant(tenant).values_list("pk", "email")),
            "exports": list(Export.objects.for_tenant(tenant).values_list("pk", "status")),
            "erasures": list(ErasureRequest.objects.for_tenant(tenant).values_list("pk", "status")),
        }


def leaks(response, b_tenant) -> list[str]:
    """What of tenant B a response shows: a marker or B's id in its body or redirect."""
    text = response.content.decode(errors="replace") if not response.streaming else ""
    text += response.get("Location", "")
    return [m for m in (*B_MARKERS, str(b_tenant.pk)) if m in text]


def urls_for(route: str, values: list[str]) -> list[str]:
    names = PARAM.findall(route)
    if not names:
        return ["/" + route]
    urls = []
    for combo in itertools.product(values, repeat=len(names)):
        url = route
        for value in combo:
            url = PARAM.sub(value, url, count=1)
        urls.append("/" + url)
    return urls


def test_every_route_refuses_another_tenants_ids(tenant, tenant_user, b_world):
    TenantUser.objects.filter(pk=tenant_user.pk).update(is_admin=True)
    attacker = signed_in(tenant_user)
    b_tenant = b_world["tenant"]
    before = b_state(b_tenant)
    forged_bodies = [
        {"ticket": b_world["ticket"], "parts": [{"number": 1, "etag": '"x"'}]},
        {"ticket": b_world["ticket"]},
    ]
    tried = 0
    for route in tenant_routes():
        if route.startswith(("logout", "login")):
            continue
        for url in urls_for(route, b_world["ids"]):
            answers = [
                attacker.get(url),
                attacker.get(url, {"actor": b_world["ids"][0], "page": "1"}),
                attacker.post(url, {"email": b_world["admin"].email, "kind": "user"}),
                attacker.post(url, {"scope": "borrower", "subject_ref": "B-SECRET-REF"}),
                *(
                    attacker.post(url, json.dumps(body), content_type="application/json")
                    for body in forged_bodies
                ),
            ]
            for answer in answers:
                tried += 1
                assert answer.status_code < 500, (url, answer.status_code)
                shown = leaks(answer, b_tenant)
                assert not shown, (url, answer.status_code, shown)
    assert tried > 100
    assert b_state(b_tenant) == before
    # B's upload is still open on the S3 server: A's abort and complete with B's ticket did
    # nothing (list_parts raises NoSuchUpload for an aborted one).
    opened = multipart.multipart_ticket_open(ticket=b_world["ticket"], tenant=b_tenant)
    documents = store.documents_store()
    documents.client.list_parts(Bucket=documents.bucket, Key=opened.key, UploadId=opened.upload_id)


def test_a_session_from_one_host_opens_nothing_on_another(tenant, tenant_user, b_world):
    TenantUser.objects.filter(pk=tenant_user.pk).update(is_admin=True)
    attacker = signed_in(tenant_user)
    b_tenant = b_world["tenant"]
    attacker.defaults["HTTP_HOST"] = host_of(b_tenant)  # A's cookies, B's host
    for route in tenant_routes():
        for url in urls_for(route, b_world["ids"]):
            answer = attacker.get(url)
            assert answer.status_code < 500, (url, answer.status_code)
            assert not leaks(answer, b_tenant), (url, answer.status_code)
            if answer.status_code == 200:  # only public pages: the sign-in and reset forms
                assert route.startswith(PUBLIC) or route == "", url
