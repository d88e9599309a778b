"""Staff search the audit log in the admin: under a tenant's context that tenant's rows only;
in the all-tenants mode every tenant's and the system chain; with no choice, nothing."""

from __future__ import annotations

import pytest

from audit import recorder
from tenants import db

LOG = "/admin/audit/auditentry/"


def choose(client, value: str) -> None:
    client.post("/admin/tenant-context/", {"tenant": value})


@pytest.fixture
def rows(tenant, other_tenant):
    """One findable row in each tenant's chain and one in the system chain."""
    with db.tenant_context(tenant.pk):
        recorder.record(action="test.read", target_id="acme-row")
    with db.tenant_context(other_tenant.pk):
        recorder.record(action="test.read", target_id="globex-row")
    recorder.record(action="test.read", target_id="system-row")


def listed(client, query: str = "test.read") -> set[str]:
    """The target ids the admin's search lists (the result rows, not the echoed query)."""
    response = client.get(LOG, {"q": query})
    assert response.status_code == 200
    return {entry.target_id for entry in response.context["cl"].result_list}


@pytest.mark.django_db
def test_without_a_tenant_context_staff_see_no_rows(staff_client, rows):
    assert listed(staff_client) == set()


@pytest.mark.django_db
def test_under_a_tenant_context_staff_search_only_that_tenants_rows(
    staff_client, tenant, other_tenant, rows
):
    choose(staff_client, str(tenant.pk))
    assert listed(staff_client) == {"acme-row"}
    assert listed(staff_client, "globex-row") == set()
    choose(staff_client, str(other_tenant.pk))
    assert listed(staff_client) == {"globex-row"}


@pytest.mark.committed
def test_in_all_tenants_mode_staff_search_every_chain(staff_client, rows):
    choose(staff_client, "all")
    assert listed(staff_client) == {"acme-row", "globex-row", "system-row"}
    assert listed(staff_client, "globex-row") == {"globex-row"}
    # The search is itself logged, in the system chain (no tenant's data was chosen).
    response = staff_client.get(LOG, {"q": "audit.search"})
    assert {(e.tenant_id, e.actor_type) for e in response.context["cl"].result_list} == {
        (None, "staff")
    }


@pytest.mark.django_db
def test_the_log_cannot_be_changed_from_the_admin(staff_client, tenant, rows):
    choose(staff_client, str(tenant.pk))
    assert staff_client.get(f"{LOG}add/").status_code == 403
