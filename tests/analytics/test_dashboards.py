"""The dashboards' query layer: tenant filter, parameters, limits, cache and its invalidation."""

import uuid
from datetime import timedelta

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from analytics import clickhouse, dashboards, services
from tenants import db, events
from tests.analytics.conftest import insert_events, now
from tests.factories import event_record


def last_week(tenant_id) -> dashboards.Scope:
    today = now().date()
    return dashboards.Scope(tenant_id=tenant_id, start=today - timedelta(days=7), end=today)


def seed(tenant_id, n: int, event_type: str = "auth.sign_in", hours_apart: int = 1) -> None:
    insert_events(
        [
            (
                tenant_id,
                event_type,
                '{"document_type": "pan"}',
                uuid.uuid4(),
                now() - timedelta(hours=i * hours_apart),
            )
            for i in range(n)
        ]
    )


def test_scoped_sql_binds_the_tenant_as_a_parameter_and_always_limits():
    tenant_id = uuid.uuid4()
    for query in dashboards.QUERIES.values():
        scope = last_week(None if query.all_tenants_only else tenant_id)
        sql, parameters = dashboards.scoped_sql(query, scope)
        assert str(tenant_id) not in sql
        if scope.tenant_id:
            assert "tenant_id = {tenant_id:UUID}" in sql
            assert parameters["tenant_id"] == str(tenant_id)
        assert sql.endswith(
            "SETTINGS readonly=1, max_execution_time=10, max_result_rows=50000, "
            "result_overflow_mode='throw'"
        )


def test_scope_accepts_only_a_uuid_tenant():
    with pytest.raises(TypeError):
        dashboards.Scope(tenant_id="x' OR 1=1 --", start=now().date(), end=now().date())
    with pytest.raises(ValueError):
        dashboards.Scope(tenant_id=None, start=now().date(), end=now().date() - timedelta(1))


def test_tenant_dashboard_counts_only_that_tenants_events(clickhouse_db, tenant, other_tenant):
    seed(tenant.pk, 3)
    seed(other_tenant.pk, 5, event_type="document.uploaded")
    with db.tenant_context(tenant.pk):
        charts = dashboards.dashboard(last_week(tenant.pk))
    assert charts["total_events"] == 3
    assert charts["top_event_types"] == {"labels": ["auth.sign_in"], "data": [3]}
    assert charts["uploads_by_document_type"] == {"labels": [], "data": []}
    assert charts["active_users"]["total"] == 3
    assert sum(sum(d["data"]) for d in charts["events_by_hour"]["datasets"]) == 3
    assert "events_by_tenant" not in charts


def test_active_users_are_distinct_per_day_and_over_the_range(clickhouse_db, tenant):
    # The range total is the exact union of the days' users, not the sum of the days.
    returning, once = uuid.uuid4(), uuid.uuid4()
    today, yesterday = now(), now() - timedelta(days=1)
    insert_events(
        [
            (tenant.pk, "auth.sign_in", "{}", returning, today),
            (tenant.pk, "auth.sign_in", "{}", returning, today - timedelta(minutes=5)),
            (tenant.pk, "auth.sign_in", "{}", returning, yesterday),
            (tenant.pk, "auth.sign_in", "{}", once, yesterday),
        ]
    )
    with db.tenant_context(tenant.pk):
        users = dashboards.dashboard(last_week(tenant.pk))["active_users"]
    by_day = dict(zip(users["labels"], users["data"], strict=True))
    assert by_day[today.date().isoformat()] == 1
    assert by_day[yesterday.date().isoformat()] == 2
    assert users["total"] == 2


@pytest.mark.committed
def test_all_tenants_dashboard_covers_every_tenant(clickhouse_db, tenant, other_tenant):
    seed(tenant.pk, 3)
    seed(other_tenant.pk, 5, event_type="document.uploaded")
    with db.all_tenants_context():
        charts = dashboards.dashboard(last_week(None))
    assert charts["total_events"] == 8
    assert charts["events_by_tenant"] == {
        "labels": ["Globex Finance", "Acme Lending"],
        "data": [5, 3],
    }
    assert charts["uploads_by_document_type"] == {"labels": ["pan"], "data": [5]}


def test_dashboard_is_refused_outside_its_own_tenant_context(clickhouse_db, tenant, other_tenant):
    with db.tenant_context(other_tenant.pk), pytest.raises(db.TenantContextError):
        dashboards.dashboard(last_week(tenant.pk))
    with pytest.raises(db.TenantContextError):
        dashboards.dashboard(last_week(tenant.pk))  # no context at all


def test_dashboard_queries_are_read_only(clickhouse_db, tenant, monkeypatch):
    monkeypatch.setitem(
        dashboards.QUERIES,
        "sneaky",
        dashboards.DashboardQuery("sneaky", "INSERT INTO events (event_id) SELECT 1 WHERE {where}"),
    )
    with clickhouse.session() as client, pytest.raises(DatabaseError, match="readonly"):
        dashboards.run_query(client, "sneaky", last_week(tenant.pk))


def test_dashboard_queries_stop_at_the_row_cap(clickhouse_db, tenant, settings):
    seed(tenant.pk, 5)  # five distinct hours
    settings.ANALYTICS_DASHBOARD_MAX_ROWS = 2
    with clickhouse.session() as client, pytest.raises(DatabaseError, match="max rows"):
        dashboards.run_query(client, "events_by_hour", last_week(tenant.pk))


def test_dashboard_queries_stop_at_the_time_limit(clickhouse_db, tenant, settings, monkeypatch):
    seed(tenant.pk, 4)
    settings.ANALYTICS_DASHBOARD_TIMEOUT = 1
    monkeypatch.setitem(
        dashboards.QUERIES,
        "slow",
        dashboards.DashboardQuery(
            "slow", "SELECT sum(sleepEachRow(0.6)) FROM events WHERE {where}"
        ),
    )
    with clickhouse.session() as client, pytest.raises(DatabaseError, match=r"(?i)timeout"):
        dashboards.run_query(client, "slow", last_week(tenant.pk))


def test_cached_dashboard_is_invalidated_when_new_events_are_drained(clickhouse_db, acme):
    event_record(tenant=acme, event_type=events.SIGN_IN)
    services.outbox_drain()
    with db.tenant_context(acme.pk):
        first = dashboards.dashboard(last_week(acme.pk))
        second = dashboards.dashboard(last_week(acme.pk))
    assert (first["cached"], first["total_events"]) == (False, 1)
    assert (second["cached"], second["total_events"]) == (True, 1)
    seed(acme.pk, 1)  # behind the cache's back: still the cached figure
    with db.tenant_context(acme.pk):
        assert dashboards.dashboard(last_week(acme.pk))["total_events"] == 1

    event_record(tenant=acme, event_type=events.SIGN_OUT)
    services.outbox_drain()

    with db.tenant_context(acme.pk):
        after = dashboards.dashboard(last_week(acme.pk))
    assert (after["cached"], after["total_events"]) == (False, 3)
