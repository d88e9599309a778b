"""The request flow: approval required, staff only, never one's own; tenants kept apart."""

from __future__ import annotations

import pytest

from privacy import services, subjects
from privacy.erasure import run
from privacy.models import ErasureRequest
from tenants import db
from tests.privacy.conftest import make_user


def test_an_erasure_does_not_run_before_a_staff_member_approves_it(tenant, staff_user, approver):
    admin = make_user(tenant, "boss@acme.example", is_admin=True)
    with db.tenant_context(tenant.pk):
        request = services.erasure_request_create(
            tenant=tenant, kind="borrower", ref="CUST-1", user=admin
        )
    with pytest.raises(ValueError, match="requested, not approved"):
        run.erasure_run(request_id=request.pk, tenant_id=tenant.pk)
    with db.tenant_context(tenant.pk), pytest.raises(services.ErasureRefused, match="Only staff"):
        services.erasure_request_approve(request=request, staff=admin)


def test_staff_cannot_approve_their_own_request(tenant, staff_user):
    with db.tenant_context(tenant.pk):
        request = services.erasure_request_create(
            tenant=tenant, kind="borrower", ref="C-1", staff=staff_user
        )
        with pytest.raises(services.ErasureRefused, match="Another staff member"):
            services.erasure_request_approve(request=request, staff=staff_user)


def test_a_plain_tenant_user_cannot_ask_for_an_erasure(tenant, tenant_user):
    with db.tenant_context(tenant.pk), pytest.raises(services.ErasureRefused):
        services.erasure_request_create(tenant=tenant, kind="borrower", ref="C-1", user=tenant_user)


def test_a_tenant_admin_cannot_name_or_see_another_tenants_subject(
    tenant, other_tenant, other_tenant_user, staff_user
):
    admin = make_user(tenant, "boss@acme.example", is_admin=True)
    with db.tenant_context(tenant.pk), pytest.raises(subjects.UnknownSubject):
        services.erasure_request_create(
            tenant=tenant, kind="user", ref=str(other_tenant_user.pk), user=admin
        )
    with db.tenant_context(other_tenant.pk):
        theirs = services.erasure_request_create(
            tenant=other_tenant, kind="borrower", ref="G-1", staff=staff_user
        )
    with db.tenant_context(tenant.pk):
        assert not ErasureRequest.objects.filter(pk=theirs.pk).exists()
        with pytest.raises(db.TenantContextError):
            services.erasure_request_create(
                tenant=other_tenant, kind="borrower", ref="G-1", user=admin
            )


def test_asking_and_approving_are_written_to_the_tenants_audit_chain(tenant, staff_user, approver):
    from django.db import connection

    with db.tenant_context(tenant.pk):
        request = services.erasure_request_create(
            tenant=tenant, kind="borrower", ref="CUST-9", staff=staff_user
        )
        services.erasure_request_approve(request=request, staff=approver)
        with connection.cursor() as cursor:  # as the runtime role, under the tenant's RLS
            cursor.execute(
                "SELECT action, metadata->'columns' FROM audit_log "
                "WHERE target_type = 'erasure_request' AND target_id = %s ORDER BY seq",
                [str(request.pk)],
            )
            logged = cursor.fetchall()
    assert [action for action, _ in logged] == [
        "erasure_request.insert",
        "erasure_request.update",
    ]
    assert "approved_by_staff_id" in logged[1][1]
