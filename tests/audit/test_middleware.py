"""Reads of personal data land in the log: who, which tenant, the real client IP, request id."""

from __future__ import annotations

import pytest

from tenants import db
from tests.audit.conftest import entries
from tests.factories import TenantUserFactory

pytestmark = pytest.mark.django_db

PROXY = {"REMOTE_ADDR": "10.0.0.7", "HTTP_X_FORWARDED_FOR": "203.0.113.9"}


@pytest.fixture(autouse=True)
def _behind_our_proxy(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]


def reads(tenant, action):
    return [row for row in entries(tenant) if row[0] == action]


def test_a_team_page_read_is_logged_with_the_real_client_ip(tenant, tenant_user, tenant_client):
    member = TenantUserFactory(tenant=tenant, email="bob@acme.example", name="Bob")
    response = tenant_client.get(f"/team/{member.pk}/", **PROXY)
    assert response.status_code == 200
    (row,) = reads(tenant, "team.view")
    assert row[1:5] == ("tenant_user", str(tenant_user.pk), str(member.pk), "203.0.113.9")
    assert row[5] == response["X-Request-ID"]


def test_a_document_detail_read_is_logged(tenant, tenant_user, tenant_client, s3_bucket):
    from tests.documents.conftest import upload

    document = upload(tenant)
    response = tenant_client.get(f"/documents/{document.pk}/", **PROXY)
    assert response.status_code == 200
    (row,) = reads(tenant, "document.view")
    assert row[1:5] == ("tenant_user", str(tenant_user.pk), str(document.pk), "203.0.113.9")
    # The upload itself was recorded by the database's trigger, in the same transaction.
    assert reads(tenant, "document.insert")


def test_a_header_from_an_untrusted_peer_is_not_believed(tenant, tenant_client):
    tenant_client.get("/", REMOTE_ADDR="198.51.100.4", HTTP_X_FORWARDED_FOR="203.0.113.9")
    (row,) = reads(tenant, "team.list")
    assert row[4] == "198.51.100.4"


def test_an_anonymous_request_reads_nothing_and_logs_nothing(tenant, client):
    client.get("/team/00000000-0000-0000-0000-000000000001/", HTTP_HOST="acme.testserver")
    assert reads(tenant, "team.view") == []


def test_a_write_records_who_wrote_it(tenant, tenant_user, tenant_client):
    # Signing in (tenant_client) wrote last_login: the trigger's row names the row, the client's
    # address and the request, in the sign-in's own transaction.
    (row,) = [row for row in entries(tenant) if row[0] == "tenant_user.update"]
    assert row[1:5] == ("anonymous", "", str(tenant_user.pk), "127.0.0.1")
    assert row[5]


def test_admins_see_their_tenant_log_and_others_do_not(tenant, tenant_user, tenant_client):
    assert tenant_client.get("/audit/").status_code == 403
    tenant_user.is_admin = True
    from tenants import db

    with db.tenant_context(tenant.pk):
        tenant_user.save(update_fields=["is_admin"])
    response = tenant_client.get("/audit/?action=tenant_user")
    assert response.status_code == 200
    assert b"tenant_user.update" in response.content
    assert reads(tenant, "audit.view")


def test_the_portability_pages_are_logged(tenant, tenant_user, tenant_client):
    assert tenant_client.get("/exports/", **PROXY).status_code == 200
    requested = tenant_client.post("/exports/mine/", **PROXY)
    assert requested.status_code == 302
    export_id = requested["Location"].rstrip("/").rsplit("/", 1)[-1]
    assert tenant_client.get(f"/exports/{export_id}/", **PROXY).status_code == 200
    # Not built yet: the link is refused, so nothing was read and nothing is logged.
    assert tenant_client.get(f"/exports/{export_id}/download/", **PROXY).status_code == 409
    rows = [row for row in entries(tenant) if row[0].startswith("export.")]
    assert [row[0] for row in rows] == ["export.list", "export.request", "export.view"]
    assert all(row[1:3] == ("tenant_user", str(tenant_user.pk)) for row in rows)
    assert rows[2][3] == export_id and rows[2][4] == "203.0.113.9"


def test_a_ready_exports_download_is_logged(tenant, tenant_user, tenant_client, s3_bucket):
    from django.utils import timezone

    from privacy.exports.models import Export, ExportStatus

    export_id = tenant_client.post("/exports/mine/")["Location"].rstrip("/").rsplit("/", 1)[-1]
    with db.tenant_context(tenant.pk):
        Export.objects.filter(pk=export_id).update(
            status=ExportStatus.READY, object_key="k.zip", finished_at=timezone.now()
        )
    response = tenant_client.get(f"/exports/{export_id}/download/", **PROXY)
    assert response.status_code == 302
    (row,) = reads(tenant, "export.download")
    assert row[1:5] == ("tenant_user", str(tenant_user.pk), export_id, "203.0.113.9")


def test_the_erasure_pages_are_logged_for_admins_only(tenant, tenant_user, tenant_client):
    assert tenant_client.get("/privacy/erasure/", **PROXY).status_code == 403
    assert reads(tenant, "erasure.list") == []  # refused: nothing was read
    tenant_user.is_admin = True
    with db.tenant_context(tenant.pk):
        tenant_user.save(update_fields=["is_admin"])
    assert tenant_client.get("/privacy/erasure/", **PROXY).status_code == 200
    (row,) = reads(tenant, "erasure.list")
    assert row[1:5] == ("tenant_user", str(tenant_user.pk), "", "203.0.113.9")
