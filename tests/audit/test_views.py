"""The tenant-admin audit page: its own tenant's rows only, paged newest first, filtered by
action prefix, actor and day; every filter keeps the others across pages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit import recorder
from audit.context import Actor
from audit.views import PAGE_SIZE
from tenants import db
from tests.audit.conftest import record_some

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(tenant, tenant_user, tenant_client):
    tenant_user.is_admin = True
    with db.tenant_context(tenant.pk):
        tenant_user.save(update_fields=["is_admin"])
    return tenant_client


def test_the_log_is_paged_newest_first_and_each_page_costs_the_same_queries(
    admin_client, tenant, django_assert_max_num_queries
):
    record_some(tenant, PAGE_SIZE * 2 + 7)
    first = admin_client.get("/audit/", {"action": "test.read"}).context["page"]
    assert first.paginator.count == PAGE_SIZE * 2 + 7 and first.paginator.num_pages == 3
    seqs = [entry.seq for entry in first]
    assert len(seqs) == PAGE_SIZE and seqs == sorted(seqs, reverse=True)
    with django_assert_max_num_queries(12) as first_queries:
        admin_client.get("/audit/", {"action": "test.read"})
    with django_assert_max_num_queries(len(first_queries)):
        last = admin_client.get("/audit/", {"action": "test.read", "page": 3}).context["page"]
    assert [entry.target_id for entry in last] == [str(i) for i in range(6, -1, -1)]
    # Beyond the last page is the last page; a page that is not a number is the first.
    assert admin_client.get("/audit/", {"page": 99}).context["page"].number > 1
    assert admin_client.get("/audit/", {"page": "x"}).context["page"].number == 1


def test_the_page_links_keep_the_filters(admin_client, tenant):
    record_some(tenant, PAGE_SIZE + 1)
    content = admin_client.get("/audit/", {"action": "test.read"}).content.decode()
    assert "action=test.read&amp;actor=&amp;day=&amp;page=2" in content


def test_filters_by_action_prefix_actor_and_day(admin_client, tenant, tenant_user):
    with db.tenant_context(tenant.pk):
        recorder.record(action="test.read", actor=Actor("tenant_user", "someone-else"))
        recorder.record(action="test.write", actor=Actor("tenant_user", "someone-else"))
        recorder.record(action="other.read", actor=Actor("tenant_user", "someone-else"))

    def actions(**filters) -> set[str]:
        return {e.action for e in admin_client.get("/audit/", filters).context["page"]}

    assert actions(action="test.") == {"test.read", "test.write"}
    assert actions(actor="someone-else") == {"test.read", "test.write", "other.read"}
    assert actions(action="test.w", actor="someone-else") == {"test.write"}
    today = timezone.now().date()
    assert "other.read" in actions(day=today.isoformat())
    assert actions(day=(today - timedelta(days=1)).isoformat()) == set()
    # A day that is no date is no filter, not an error.
    assert "other.read" in actions(day="yesterday")


def test_the_page_shows_no_other_tenants_rows(admin_client, tenant, other_tenant):
    record_some(other_tenant, 3)
    with db.tenant_context(tenant.pk):
        recorder.record(action="test.mine")
    page = admin_client.get("/audit/").context["page"]
    assert {e.tenant_id for e in page} == {tenant.pk}
    assert "test.mine" in {e.action for e in page}
