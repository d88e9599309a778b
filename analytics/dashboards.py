"""The dashboards' query layer: the only code that turns a dashboard request into SQL.

Views hand over a `Scope` (a tenant id or "all tenants", and a date range) and get chart data
back; they never see SQL. Every query here is a fixed template; the layer adds

- the tenant filter (`tenant_id = {tenant_id:UUID}`) and the date range as server-side
  parameters (nothing from a request is ever spliced into the SQL text),
- `readonly=1`, a time limit (`max_execution_time`) and a row cap (`max_result_rows`, throwing).

ClickHouse results are cached (Redis through the default cache) for 15 minutes under
tenant-scoped keys that include a per-tenant generation number; the outbox drain bumps that
number when it delivers new events for the tenant (and the all-tenants one on every delivery),
so a cached chart never outlives new data.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Sum

from analytics import clickhouse
from tenants import db

# The scope predicate the layer puts where a template says {where}. Only placeholders.
_TENANT_PREDICATE = "tenant_id = {tenant_id:UUID} AND "
_DATE_PREDICATE = "created_date BETWEEN {start:Date} AND {end:Date}"
# The same days in the rollup, as a range of its key's `hour` (so the key's index is used).
_HOUR_PREDICATE = (
    "hour >= toDateTime({start:Date}) AND hour < toDateTime({end:Date} + INTERVAL 1 DAY)"
)


@dataclass(frozen=True)
class Scope:
    """Whose events and which days: one tenant (a UUID) or all tenants (None)."""

    tenant_id: uuid.UUID | None
    start: date
    end: date

    def __post_init__(self) -> None:
        if self.tenant_id is not None and not isinstance(self.tenant_id, uuid.UUID):
            raise TypeError("Scope.tenant_id must be a UUID (or None for all tenants)")
        if not (isinstance(self.start, date) and isinstance(self.end, date)):
            raise TypeError("Scope dates must be dates")
        if self.end < self.start:
            raise ValueError("the date range ends before it starts")


@dataclass(frozen=True)
class DashboardQuery:
    name: str
    sql: str  # `{where}` marks where the layer puts the tenant and date filter
    all_tenants_only: bool = False
    rollup: bool = False  # reads `events_hourly` (filtered on `hour`), not `events`


QUERIES = {
    q.name: q
    for q in [
        # The spec's tenant query, over the chosen range (default: the last 7 days), read from
        # the hourly rollup (analytics/rollups.py): the same figures as counting `events`. Split
        # by document type too, so the top event types and the uploads by document type are
        # summed from its rows in Python: one query where there were three (the embedded engine
        # spends some milliseconds on every query, however few rows it reads).
        DashboardQuery(
            "events_by_hour",
            "SELECT event_type, document_type, sum(events) AS event_count, hour "
            "FROM events_hourly WHERE {where} GROUP BY event_type, document_type, hour "
            "HAVING event_count != 0 ORDER BY hour",
            rollup=True,
        ),
        # Distinct users cannot be summed from hours: this reads `events` (one tenant's
        # granules for the range, by the table's key), each day's set of users kept as a state
        # so the range's total is their exact union, in the same query.
        DashboardQuery(
            "active_users",
            "SELECT arraySort(groupArray((day, finalizeAggregation(users)))), "
            "uniqExactMerge(users) FROM (SELECT created_date AS day, uniqExactState(user_id) "
            "AS users FROM events WHERE {where} AND user_id IS NOT NULL GROUP BY day)",
        ),
        DashboardQuery(
            "events_by_tenant",
            "SELECT tenant_id, sum(events) AS n FROM events_hourly WHERE {where} "
            "GROUP BY tenant_id HAVING n != 0 ORDER BY n DESC LIMIT 20",
            all_tenants_only=True,
            rollup=True,
        ),
    ]
}


def scoped_sql(query: DashboardQuery, scope: Scope) -> tuple[str, dict]:
    """Return the SQL and server-side parameters of `query` limited to `scope`."""
    if query.all_tenants_only and scope.tenant_id is not None:
        raise ValueError(f"{query.name} is an all-tenants query")
    predicate = _HOUR_PREDICATE if query.rollup else _DATE_PREDICATE
    parameters: dict = {"start": scope.start, "end": scope.end}
    if scope.tenant_id is not None:
        predicate = _TENANT_PREDICATE + predicate
        parameters["tenant_id"] = str(scope.tenant_id)
    limits = (
        f"readonly=1, max_execution_time={int(settings.ANALYTICS_DASHBOARD_TIMEOUT)}, "
        f"max_result_rows={int(settings.ANALYTICS_DASHBOARD_MAX_ROWS)}, "
        "result_overflow_mode='throw'"
    )
    return f"{query.sql.replace('{where}', predicate)} SETTINGS {limits}", parameters


def run_query(client, name: str, scope: Scope) -> list[tuple]:
    sql, parameters = scoped_sql(QUERIES[name], scope)
    return client.query(sql, parameters=parameters).result_rows


# --- Cache generations --------------------------------------------------------------------------
_GENERATION_KEY = "analytics:generation"  # scoped per tenant by the cache's key function


def _generation() -> int:
    cache.add(_GENERATION_KEY, 1, timeout=None)
    return cache.get(_GENERATION_KEY) or 1


def _bump() -> None:
    cache.add(_GENERATION_KEY, 1, timeout=None)
    try:
        cache.incr(_GENERATION_KEY)
    except ValueError:  # evicted between add and incr
        cache.set(_GENERATION_KEY, 2, timeout=None)


def invalidate(tenant_id: uuid.UUID) -> None:
    """Make the cached charts of `tenant_id`, and of the all-tenants view, stale."""
    if db.current_tenant_id() is not None:
        raise db.TenantContextError("invalidate() runs outside any tenant context")
    with db.tenant_context(tenant_id):
        _bump()
    _bump()  # no tenant context: the all-tenants ("global") generation


def _check_context(scope: Scope) -> None:
    # The cache key's scope and the database's RLS both follow the active context: it must be
    # the scope's own, or a cached chart could be filed under the wrong tenant.
    if db.current_tenant_id() != scope.tenant_id:
        raise db.TenantContextError("dashboard data is built inside the scope's own context")


# --- Chart data ---------------------------------------------------------------------------------
def _hours(scope: Scope) -> list[datetime]:
    first = datetime.combine(scope.start, time.min)
    count = ((scope.end - scope.start).days + 1) * 24
    return [first + timedelta(hours=h) for h in range(count)]


def _days(scope: Scope) -> list[date]:
    return [scope.start + timedelta(days=d) for d in range((scope.end - scope.start).days + 1)]


def clickhouse_charts(scope: Scope) -> dict:
    """Return the ClickHouse-backed chart data for `scope`, cached per tenant and generation."""
    _check_context(scope)
    owner = scope.tenant_id or "all"
    key = (
        f"analytics:dashboard:{clickhouse.database_name()}:{owner}:g{_generation()}:"
        f"{scope.start}:{scope.end}"
    )
    cached = cache.get(key)
    if cached is not None:
        return {**cached, "cached": True}
    names = [n for n, q in QUERIES.items() if scope.tenant_id is None or not q.all_tenants_only]
    with clickhouse.session() as client:
        rows = {name: run_query(client, name, scope) for name in names}
    charts = _shape(scope, rows)
    cache.set(key, charts, settings.ANALYTICS_DASHBOARD_CACHE_SECONDS)
    return {**charts, "cached": False}


def _totals(pairs) -> list[tuple[str, int]]:
    """Sum (label, count) pairs by label; the non-zero sums, largest first, then by label."""
    sums: dict[str, int] = {}
    for label, count in pairs:
        sums[label] = sums.get(label, 0) + count
    return sorted(((k, n) for k, n in sums.items() if n), key=lambda pair: (-pair[1], pair[0]))


def _shape(scope: Scope, rows: dict[str, list[tuple]]) -> dict:
    hours = _hours(scope)
    rollup = rows["events_by_hour"]
    by_type: dict[str, dict[datetime, int]] = {}
    for event_type, _document_type, count, hour in rollup:
        series = by_type.setdefault(event_type, {})
        series[hour.replace(tzinfo=None)] = series.get(hour.replace(tzinfo=None), 0) + count
    days = _days(scope)
    [(users_by_day, users_total)] = rows["active_users"] or [([], 0)]
    users_by_day = dict(users_by_day)
    charts = {
        "events_by_hour": {
            "labels": [h.strftime("%Y-%m-%d %H:00") for h in hours],
            "datasets": [
                {"label": t, "data": [series.get(h, 0) for h in hours]}
                for t, series in sorted(by_type.items())
                if any(series.values())
            ],
        },
        "top_event_types": _pairs(_totals((t, n) for t, _, n, _ in rollup)[:10]),
        "active_users": {
            "labels": [d.isoformat() for d in days],
            "data": [users_by_day.get(d, 0) for d in days],
            "total": users_total,
        },
        "uploads_by_document_type": _pairs(
            [
                (d or "unknown", n)
                for d, n in _totals((d, n) for t, d, n, _ in rollup if t == "document.uploaded")
            ]
        ),
        "total_events": sum(n for _, _, n, _ in rollup),
    }
    if "events_by_tenant" in rows:
        from tenants.models import Tenant  # the registry has no RLS: names for all tenants

        names = dict(Tenant.objects.values_list("pk", "name"))
        charts["events_by_tenant"] = _pairs(
            [(names.get(t, str(t)), n) for t, n in rows["events_by_tenant"]]
        )
    return charts


def _pairs(rows) -> dict:
    return {"labels": [str(label) for label, _ in rows], "data": [n for _, n in rows]}


def storage_by_tier(scope: Scope) -> dict:
    """Return live documents' bytes and count per storage class, from PostgreSQL (RLS-bound)."""
    from documents.models import Document

    _check_context(scope)
    documents = Document.objects.live()
    if scope.tenant_id is not None:
        documents = documents.for_tenant(scope.tenant_id)
    tiers = (
        documents.values("storage_class")
        .annotate(bytes=Sum("size_bytes"), documents=Count("pk"))
        .order_by("storage_class")
    )
    tiers = list(tiers)
    return {
        "labels": [t["storage_class"] for t in tiers],
        "bytes": [t["bytes"] or 0 for t in tiers],
        "documents": [t["documents"] for t in tiers],
    }


def dashboard(scope: Scope) -> dict:
    """Return every chart of the dashboard for `scope` (run inside the scope's own context)."""
    return {**clickhouse_charts(scope), "storage_by_tier": storage_by_tier(scope)}
