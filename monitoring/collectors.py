"""Figures read at scrape time: PostgreSQL, storage per tenant and its cost, the outbox, backups,
Celery's queues. Each section fails alone: `metis_collector_up{section}` says which answered.

Storage and outbox figures are every tenant's, read through the staff read role
(`tenants.db.all_tenants_context`); they reach only the staff host's /metrics and the samples
table, never a tenant's context.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connections
from django.db.models import Count, Sum
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from documents import replication
from documents.models import Document
from monitoring import figures
from tenants import db
from tenants.models import Tenant

logger = logging.getLogger(__name__)

GB = 2**30  # AWS's "GB" in GB-month prices


@dataclass
class Family:
    """A gauge being filled: its name, help text, labels and samples."""

    name: str
    documentation: str
    labels: tuple[str, ...] = ()
    samples: list[tuple[tuple[str, ...], float]] = field(default_factory=list)

    def add(self, value: float, *labels: str) -> None:
        self.samples.append((labels, float(value)))

    def metric(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily(self.name, self.documentation, labels=list(self.labels))
        for labels, value in self.samples:
            family.add_metric(list(labels), value)
        return family


def _database() -> list[Family]:
    connections_used = Family(
        "metis_db_connections", "Server connections open, by state.", ("state",)
    )
    connections_max = Family("metis_db_connections_max", "The server's max_connections.")
    slow = Family(
        "metis_db_slow_queries",
        f"Queries running longer than {settings.ALERT_DB_SLOW_QUERY_SECONDS:g} s"
        " (ALERT_DB_SLOW_QUERY_SECONDS; sessions this role may see).",
    )
    longest = Family("metis_db_longest_query_seconds", "Age of the longest running query.")
    lock_waits = Family("metis_db_lock_waits", "Backends waiting for a lock another holds.")
    size = Family("metis_db_size_bytes", "Disk used by the application's database.")
    replicas = Family("metis_db_replicas", "Streaming replicas connected (pg_stat_replication).")
    lag = Family(
        "metis_db_replication_lag_seconds",
        "Replay lag of each replica; absent while there is none.",
        ("replica",),
    )
    current = figures.database_connections()
    for state, count in current.by_state.items():
        connections_used.add(count, state)
    connections_max.add(current.max)
    queries = figures.running_queries(slower_than=settings.ALERT_DB_SLOW_QUERY_SECONDS)
    slow.add(queries.slow)
    longest.add(queries.longest_seconds)
    size.add(figures.database_size_bytes())
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted")
        lock_waits.add(cursor.fetchone()[0])
        cursor.execute(
            "SELECT coalesce(application_name, '') || '@' || coalesce(host(client_addr), 'local'),"
            " extract(epoch FROM replay_lag) FROM pg_stat_replication"
        )
        rows = cursor.fetchall()
    replicas.add(len(rows))
    for replica, seconds in rows:
        if seconds is not None:  # NULL: caught up and idle, or not ours to see
            lag.add(seconds, replica)
    return [connections_used, connections_max, slow, longest, lock_waits, size, replicas, lag]


def storage_by_tenant() -> list[tuple[str, str, int, int]]:
    """Return (tenant subdomain, storage class, bytes, objects) of every tenant's documents.

    Every document row names a stored object (deleted ones are kept); noncurrent versions are
    not counted, so the figures are a floor.
    """
    names = dict(Tenant.objects.values_list("id", "subdomain"))
    with db.all_tenants_context():
        rows = (
            Document.objects.order_by()
            .values_list("tenant_id", "storage_class")
            .annotate(total=Sum("size_bytes"), count=Count("id"))
        )
        return [
            (names.get(tenant_id, str(tenant_id)), tier, int(total or 0), count)
            for tenant_id, tier, total, count in rows
        ]


def _storage() -> list[Family]:
    stored = Family(
        "metis_s3_stored_bytes", "Bytes of documents in S3, by tenant and tier.", ("tenant", "tier")
    )
    objects = Family(
        "metis_s3_stored_objects", "Document objects in S3, by tenant and tier.", ("tenant", "tier")
    )
    cost = Family(
        "metis_s3_estimated_monthly_cost_usd",
        "Estimated monthly storage cost (STORAGE_PRICES_USD_PER_GB_MONTH), by tenant.",
        ("tenant",),
    )
    prices = settings.STORAGE_PRICES_USD_PER_GB_MONTH
    costs: dict[str, float] = {}
    for tenant, tier, total, count in storage_by_tenant():
        stored.add(total, tenant, tier)
        objects.add(count, tenant, tier)
        costs[tenant] = costs.get(tenant, 0.0) + total / GB * prices.get(tier, prices["STANDARD"])
    for tenant, usd in sorted(costs.items()):
        cost.add(usd, tenant)
    return [stored, objects, cost]


def _outbox(now: datetime.datetime) -> list[Family]:
    backlog = Family("metis_outbox_pending_events", "Events waiting for delivery to ClickHouse.")
    oldest = Family(
        "metis_outbox_oldest_pending_age_seconds", "Age of the oldest undelivered event (0: none)."
    )
    rejected = Family("metis_outbox_rejected_events", "Events ClickHouse refused, set aside.")
    current = figures.outbox(now)
    backlog.add(current.pending)
    oldest.add(current.oldest_pending_age_seconds)
    rejected.add(current.rejected)
    return [backlog, oldest, rejected]


def _backups(now: datetime.datetime) -> list[Family]:
    good_age = Family(
        "metis_backup_last_good_age_seconds",
        "Age of the newest verified, restore-tested physical backup; absent: none yet.",
    )
    archive_age = Family(
        "metis_backup_wal_archive_age_seconds",
        "Time since the last WAL segment reached the archive (latest check); absent: none.",
    )
    rto = Family("metis_backup_drill_rto_seconds", "RTO measured by the latest finished drill.")
    rpo = Family("metis_backup_drill_rpo_seconds", "RPO measured by the latest finished drill.")
    good = figures.last_good_backup()
    if good is not None:
        good_age.add((now - good.started_at).total_seconds())
    check = figures.latest_archive_check()
    if check is not None and check.last_archived_at is not None:
        archive_age.add((now - check.last_archived_at).total_seconds())
    drill = figures.latest_finished_drill()
    if drill is not None and drill.rto_seconds is not None:
        rto.add(drill.rto_seconds)
    if drill is not None and drill.rpo_seconds is not None:
        rpo.add(drill.rpo_seconds)
    return [good_age, archive_age, rto, rpo]


def _celery() -> list[Family]:
    depth = Family(
        "metis_celery_queue_length", "Messages waiting in each Celery queue.", ("queue",)
    )
    for name, waiting in figures.queue_depths().items():
        depth.add(waiting, name)
    return [depth]


def _replication() -> list[Family]:
    """The DR bucket's lag (documents/replication.py); absent without a DR bucket."""
    pending = Family(
        "metis_dr_replication_pending_versions",
        "Stored document versions not yet copied to the DR bucket; absent: no DR bucket.",
    )
    oldest = Family(
        "metis_dr_replication_lag_seconds",
        "How long the oldest version not yet in the DR bucket has waited (0: none).",
    )
    if replication.dr_enabled():
        with db.all_tenants_context():
            lag = replication.replication_lag()
        pending.add(lag.pending)
        oldest.add(lag.oldest_seconds)
    return [pending, oldest]


def _replica() -> list[Family]:
    """The read replica's lag as the application sees it (tenants/replica.py)."""
    lag = Family(
        "metis_db_replica_lag_seconds",
        "Replay lag of the read replica (DATABASE_REPLICA_URL): 0 caught up, +Inf unreachable; "
        "absent without one.",
    )
    seconds = figures.replica_lag_seconds()
    if seconds is not None:
        lag.add(seconds)
    return [lag]


def _sections(now: datetime.datetime) -> dict[str, Callable[[], list[Family]]]:
    return {
        "database": _database,
        "replica": _replica,
        "storage": _storage,
        "replication": _replication,
        "outbox": lambda: _outbox(now),
        "backups": lambda: _backups(now),
        "celery": _celery,
    }


class ScrapeCollector(Collector):
    """Every scrape-time figure, read afresh on each collect()."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = Family(
            "metis_collector_up", "1 when the section's figures could be read.", ("section",)
        )
        for section, read in _sections(timezone.now()).items():
            try:
                families = read()
            except Exception:
                logger.exception("metrics: the %s figures could not be read", section)
                up.add(0, section)
                continue
            up.add(1, section)
            for family in families:
                yield family.metric()
        yield up.metric()
